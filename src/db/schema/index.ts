export * from './accounts.js';
export * from './access-tokens.js';
export * from './products.js';
export * from './customers.js';
export * from './license-keys.js';
export * from './devices.js';
