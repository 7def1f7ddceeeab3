// Lint rules, and the import boundaries of STYLE.md: api → storage only; storage → the driver interface
// only; only registry/driver/s3 imports the AWS SDK; only operator/kube imports @kubernetes/client-node;
// operator and registry never import each other.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

const restrict = (patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'coverage/'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    ignores: ['eslint.config.js', 'vitest.config.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' },
        { selector: 'ExportAllDeclaration', message: 'No export *: name what you export.' },
      ],
    },
  },
  {
    files: ['registry/**/*.ts'],
    ignores: ['registry/driver/s3/**'],
    rules: restrict([
      { group: ['@aws-sdk/*'], message: 'Only registry/driver/s3 imports the AWS SDK.' },
      { group: ['**/operator/**', '@kubernetes/*'], message: 'The registry never imports the operator or Kubernetes.' },
    ]),
  },
  {
    files: ['registry/api/**/*.ts'],
    rules: restrict([
      { group: ['../driver/*/**', '**/driver/filesystem/**', '**/driver/inmemory/**', '**/driver/s3/**'], message: 'registry/api never imports a driver.' },
      { group: ['@aws-sdk/*'], message: 'Only registry/driver/s3 imports the AWS SDK.' },
    ]),
  },
  {
    files: ['registry/storage/**/*.ts'],
    rules: restrict([
      { group: ['../api/**', '**/registry/api/**'], message: 'registry/storage has no HTTP.' },
      { group: ['fastify', '@fastify/*'], message: 'registry/storage has no HTTP.' },
      { group: ['../driver/filesystem/**', '../driver/inmemory/**', '../driver/s3/**'], message: 'registry/storage sees only the driver interface.' },
      { group: ['@aws-sdk/*'], message: 'Only registry/driver/s3 imports the AWS SDK.' },
    ]),
  },
  {
    files: ['operator/**/*.ts'],
    ignores: ['operator/kube/**'],
    rules: restrict([
      { group: ['@kubernetes/*'], message: 'Only operator/kube touches @kubernetes/client-node.' },
      { group: ['**/registry/**'], message: 'The operator never imports the registry.' },
    ]),
  },
);
