import { defineConfig } from 'vitest/config';

// The gateway serves the built files at /ui/ (ui/dist); the CSP there is `default-src 'self'`,
// so the build must not inline scripts and must not load anything from elsewhere.
export default defineConfig({
  base: '/ui/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Keep every asset a file: `data:` URLs for scripts would break the CSP.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
