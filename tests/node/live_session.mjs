// @google/genai's Live client in node: it turns an http:// base URL into ws://.
// Usage: node live_session.mjs BASE_URL API_KEY MODEL; prints one JSON line with what it saw.
import { GoogleGenAI, Modality } from '@google/genai';

const [baseUrl, apiKey, model] = process.argv.slice(2);
const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl, apiVersion: 'v1beta' } });
const texts = [];
let error = null;
let finish;
const finished = new Promise((resolve) => { finish = resolve; });
try {
  const session = await ai.live.connect({
    model,
    config: { responseModalities: [Modality.TEXT] },
    callbacks: {
      onmessage: (message) => {
        if (message.text) texts.push(message.text);
        if (message.serverContent?.turnComplete) finish();
      },
      onerror: (e) => { error = String(e.message ?? e); finish(); },
      onclose: (e) => { if (e.code !== 1000) error = `closed ${e.code}: ${e.reason}`; finish(); },
    },
  });
  session.sendClientContent({ turns: [{ role: 'user', parts: [{ text: 'hi' }] }], turnComplete: true });
  await finished;
  session.close();
} catch (e) {
  error = String(e);
}
console.log(JSON.stringify({ texts, error }));
