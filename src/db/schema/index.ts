export * from './access-tokens.js';
export * from './accounts.js';
export * from './customers.js';
export * from './devices.js';
export * from './license-keys.js';
export * from './products.js';
export * from './sessions.js';
export * from './signing-keys.js';
