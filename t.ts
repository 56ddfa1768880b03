import { PGlite } from '@electric-sql/pglite';
const t = Date.now();
const db = await PGlite.create();
console.log('created', Date.now() - t);
console.log((await db.query('select 1 as x')).rows);
const t2 = Date.now();
const c = await db.clone();
console.log('clone', Date.now() - t2);
