// Bundled by esbuild for a browser page, as a web app ships @google/genai.
import { GoogleGenAI } from '@google/genai';

window.GoogleGenAI = GoogleGenAI;
