import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test-artifacts/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      // Type information, so the promise rules below see which values are promises. Two programs:
      // everything under tsconfig.test.json (Node) and the console (DOM, bundler resolution).
      parserOptions: { project: ['./tsconfig.test.json', './server-stub/console/tsconfig.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits loses its rejection. `void p` is allowed only where a comment says
      // why p cannot reject (or why losing it is harmless).
      '@typescript-eslint/no-floating-promises': 'error',
      // An async callback where a void one is expected (event listeners, forEach, setTimeout)
      // floats its promise the same way; a promise in a condition is always truthy.
      '@typescript-eslint/no-misused-promises': 'error',
      // Awaiting a value that is not a promise usually means the wrong function was called.
      '@typescript-eslint/await-thenable': 'error',
      // Off: async methods that implement a promise-returning interface (snapshot backends,
      // fastify handlers, operation handlers) have nothing to await, and rewriting them to
      // return Promise.resolve() reads worse and moves synchronous throws out of the promise.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
