// The Vercel AI SDK as an app uses it: streamText through @ai-sdk/google, pointed at the proxy.
// Usage: node vercel_stream.mjs BASE_URL API_KEY MODEL; prints one JSON line with what it saw.
import { streamText } from 'ai';
import { createGoogleGenerativeAI } from '@ai-sdk/google';

const [baseURL, apiKey, model] = process.argv.slice(2);
const google = createGoogleGenerativeAI({ baseURL, apiKey });
const texts = [];
let threw = null;
try {
  const result = streamText({ model: google(model), prompt: 'hi', maxRetries: 0, onError: () => {} });
  for await (const text of result.textStream) texts.push(text);
} catch (error) {
  threw = `${error?.name}: ${error?.message}`;
}
console.log(JSON.stringify({ texts, threw }));
