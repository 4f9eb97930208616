// The web app's build: static assets in dist/, which the collab binary embeds and serves
// at / (api/src/web.rs). Hashed file names under assets/ are cached for good; index.html
// is asked for again each time.
import { defineConfig } from 'vite'

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The budget is checked by the browser tests; this only warns at build time.
    chunkSizeWarningLimit: 1200,
  },
  server: {
    // `npm run dev` next to a running collab (http://127.0.0.1:7700) proxies the API.
    proxy: {
      '/v1': { target: 'http://127.0.0.1:7700', ws: true },
    },
  },
})
