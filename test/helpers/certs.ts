import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeAtExit } from './config-file.ts';
import { waitUntil } from './delivery.ts';

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by a different CA (must be refused). */
  rogueCert: string;
  rogueKey: string;
  read(file: string): Buffer;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A throw-away CA with server and client certificates for 127.0.0.1/localhost, made with openssl. */
export function makePki(): TestPki {
  const dir = removeAtExit(mkdtempSync(join(tmpdir(), 'eyrie-pki-')));
  const ca = (name: string) => {
    openssl(
      dir,
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    );
  };
  const leaf = (name: string, caName: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      dir,
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${caName}.crt`,
      '-CAkey',
      `${caName}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    );
  };
  ca('ca');
  ca('rogue-ca');
  leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
  leaf('rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string) => join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    rogueCert: p('rogue.crt'),
    rogueKey: p('rogue.key'),
    read: (file) => readFileSync(file),
  };
}

/** Replaces a file as a Kubernetes secret volume does: a new file renamed over the old one. */
export function replaceFile(path: string, from: string): void {
  copyFileSync(from, `${path}.new`);
  renameSync(`${path}.new`, path);
}

const RELOADED = /certificate files changed; new connections use the new ones/;
const UNUSABLE = /certificate files changed but cannot be used/;

/** Waits until `lines` (a captured log) report certificate files read again: used, or not usable. */
export async function certificateReloadLogged(
  lines: readonly Record<string, unknown>[],
  outcome: 'used' | 'unusable',
): Promise<Record<string, unknown>> {
  const pattern = outcome === 'used' ? RELOADED : UNUSABLE;
  const find = () => lines.find((l) => pattern.test(String(l.msg)));
  await waitUntil(
    () => find() !== undefined,
    3000,
    () => `certificate reload logged as ${outcome}`,
  );
  return find()!;
}
