// Runs s3rver (a real S3-compatible server) on 127.0.0.1 and prints its port as one JSON line.
// Started by tests/helpers/s3.ts with --openssl-legacy-provider: s3rver encrypts its
// ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers through that provider.
// Usage: node --openssl-legacy-provider s3rver-process.mjs <directory> <bucket>…
import S3rver from 's3rver';

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name })),
});
const info = await server.run();
process.stdout.write(JSON.stringify({ port: info.port }) + '\n');
const stop = () => server.close().then(() => process.exit(0), () => process.exit(1));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent's end closes stdin: stop with it, so no server outlives a crashed test.
process.stdin.on('end', stop);
process.stdin.resume();
