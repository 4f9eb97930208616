// The web app's build: static assets in dist/, which the collab binary embeds and serves
// at / (api/src/web.rs). Hashed file names under assets/ are cached for good; index.html
// is asked for again each time. The service worker (vite-plugin-pwa, Workbox) keeps the
// app shell on the device, so the app opens offline; documents are kept by y-indexeddb.
import { defineConfig } from 'vite'
import { VitePWA } from 'vite-plugin-pwa'

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The budget is checked by the browser tests; this only warns at build time.
    chunkSizeWarningLimit: 1200,
  },
  plugins: [
    VitePWA({
      registerType: 'autoUpdate',
      // A script file, not an inline script: the server's content security policy
      // allows scripts from itself only.
      injectRegister: 'script',
      manifest: {
        name: 'Candlefish Collab',
        short_name: 'Collab',
        description: 'Write together, live.',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        background_color: '#f6f7f9',
        theme_color: '#1f4e79',
        icons: [{ src: '/icon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' }],
      },
      workbox: {
        globPatterns: ['**/*.{js,css,html,svg,webmanifest}'],
        navigateFallback: '/index.html',
        // The API and the server's own pages are never answered from the cache.
        navigateFallbackDenylist: [/^\/v1\//, /^\/docs/, /^\/metrics/, /^\/healthz/, /^\/readyz/],
        maximumFileSizeToCacheInBytes: 3 * 1024 * 1024,
      },
    }),
  ],
  server: {
    // `npm run dev` next to a running collab (http://127.0.0.1:7700) proxies the API.
    proxy: {
      '/v1': { target: 'http://127.0.0.1:7700', ws: true },
    },
  },
})
