import { defineConfig } from 'vite';

// Plain Vite + esbuild JSX (automatic runtime from preact). No framework plugin needed.
export default defineConfig({
  base: '/',
  esbuild: {
    jsx: 'automatic',
    jsxImportSource: 'preact',
  },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2020',
    sourcemap: false,
    emptyOutDir: true,
  },
  server: {
    // `npm run dev` proxies API calls to a locally running mailstead (or the mock).
    proxy: {
      '/api': { target: 'https://127.0.0.1:8443', secure: false, changeOrigin: false },
      '/healthz': { target: 'https://127.0.0.1:8443', secure: false },
    },
  },
});
