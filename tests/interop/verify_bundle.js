#!/usr/bin/env node
// Verify an airlock Sigstore bundle with third-party code only: npm @sigstore/verify
// (the verifier sigstore-js and npm use), no airlock code involved.
//
//     node verify_bundle.js BUNDLE_JSON PUBKEY_PEM [--artifact PATH]...
//
// 1. @sigstore/bundle parses and validates the bundle (v0.3, DSSE, public-key hint);
// 2. @sigstore/verify's Verifier checks the DSSE signature over the PAE with the public key
//    that the bundle's publicKey.hint names (the hint must be the key's keyid, the sha256 of
//    its SubjectPublicKeyInfo DER); transparency log, CT log and timestamp thresholds are 0
//    since airlock signs with its own keys and uses no log;
// 3. the payload is an in-toto Statement v1 with SLSA provenance v1, and with --artifact each
//    file's sha256 is a subject digest.
//
// Exit status 0 when everything holds, 1 on any failure (reason on stderr).
// Dependencies: tests/interop/npm (installed by scripts/setup-test-env.sh into
// .npm-verify/node_modules; AIRLOCK_NPM_VERIFY names that folder).

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const modules = path.join(
  process.env.AIRLOCK_NPM_VERIFY || path.join(__dirname, '..', '..', '.npm-verify'),
  'node_modules'
);
const { bundleFromJSON } = require(path.join(modules, '@sigstore/bundle'));
const { Verifier, toSignedEntity, toTrustMaterial } = require(path.join(modules, '@sigstore/verify'));

const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';

function fail(message) {
  console.error(`verify_bundle: FAILED: ${message}`);
  process.exit(1);
}

function main(argv) {
  const positional = [];
  const artifacts = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--artifact') {
      if (i + 1 >= argv.length) fail('--artifact needs a path');
      artifacts.push(argv[++i]);
    } else {
      positional.push(argv[i]);
    }
  }
  if (positional.length !== 2) fail('usage: verify_bundle.js BUNDLE_JSON PUBKEY_PEM [--artifact PATH]...');
  const [bundlePath, keyPath] = positional;

  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const publicKey = crypto.createPublicKey(fs.readFileSync(keyPath, 'utf8'));
  const keyid = crypto
    .createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');

  // Only this key is trusted; any other hint is an unknown key.
  const keyFinder = (hint) => {
    if (hint !== keyid) throw new Error(`bundle names key ${hint}, the trusted key is ${keyid}`);
    return { publicKey, validFor: () => true };
  };
  const trustMaterial = toTrustMaterial(
    {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [],
      certificateAuthorities: [],
      ctlogs: [],
      timestampAuthorities: [],
    },
    keyFinder
  );
  const verifier = new Verifier(trustMaterial, { tlogThreshold: 0, ctlogThreshold: 0, tsaThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));
  console.log(`ok: @sigstore/verify verified the bundle's DSSE signature (${publicKey.asymmetricKeyType}, keyid ${keyid})`);

  const envelope = bundle.content.dsseEnvelope;
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) fail(`payloadType is ${envelope.payloadType}`);
  const statement = JSON.parse(envelope.payload.toString('utf8'));
  if (statement._type !== STATEMENT_V1) fail(`_type is ${statement._type}`);
  if (statement.predicateType !== SLSA_PROVENANCE_V1) fail(`predicateType is ${statement.predicateType}`);
  const subjects = new Set((statement.subject || []).map((s) => (s.digest || {}).sha256));
  for (const artifact of artifacts) {
    const digest = crypto.createHash('sha256').update(fs.readFileSync(artifact)).digest('hex');
    if (!subjects.has(digest)) fail(`artifact ${artifact} (sha256:${digest}) is not a subject`);
    console.log(`ok: ${artifact} sha256:${digest} is a subject`);
  }
  console.log('verify_bundle: OK');
}

try {
  main(process.argv.slice(2));
} catch (e) {
  // Any exception (parse error, bad signature, unknown key) is a failure, never a pass.
  fail(`${e.name || 'Error'}: ${e.message}`);
}
