// Checks a HAR file the way its consumers would: the HAR 1.2 schema through npm har-validator,
// and the two things DevTools' importer needs that the schema does not check (a startedDateTime
// that JavaScript's Date parses, a serverIPAddress that is a bare IP). Prints "ok N" (N entries)
// or the problems, one a line, and exits 1.
//   node har_check.js NODE_MODULES_DIR FILE.har
'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');
const validator = require(path.resolve(process.argv[2], 'har-validator'));
const har = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const problems = [];
for (const [i, e] of (har.log && har.log.entries || []).entries()) {
  if (Number.isNaN(Date.parse(e.startedDateTime)))
    problems.push(`entry ${i}: startedDateTime ${e.startedDateTime} is not a date`);
  if ('serverIPAddress' in e && net.isIP(e.serverIPAddress) === 0)
    problems.push(`entry ${i}: serverIPAddress ${e.serverIPAddress} is not an IP`);
}
validator.har(har).then(() => {
  if (problems.length) {
    console.log(problems.join('\n'));
    process.exit(1);
  }
  console.log(`ok ${har.log.entries.length}`);
}, (err) => {
  console.log(`${err.name}: ${err.message}`);
  for (const e of err.errors || []) console.log(JSON.stringify(e));
  process.exit(1);
});
