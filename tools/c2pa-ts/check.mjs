// Validates the C2PA manifests of files with c2pa-ts (an implementation independent of
// c2pa-rs, which c2pa-python wraps). One JSON object per file on stdout:
// {"file", "present", "valid", "codes"}; exit 0 when every file is valid, 1 otherwise.
// c2pa-ts 0.9.4 reads BMFF files of HEIF brands only; MP4 brands are added to its list, its
// BMFF hash validation is the same code.
import * as fs from 'node:fs/promises';
import { BMFF, JPEG, PNG } from '@trustnxt/c2pa-ts/asset';
import { SuperBox } from '@trustnxt/c2pa-ts/jumbf';
import { ManifestStore, ValidationResult } from '@trustnxt/c2pa-ts/manifest';

for (const brand of ['isom', 'iso2', 'mp41', 'mp42', 'qt  ']) BMFF.canReadBrands.add(brand);

async function check(file) {
  const buf = new Uint8Array(await fs.readFile(file));
  const kind = [JPEG, PNG, BMFF].find((k) => k.canRead(buf));
  if (!kind) return { file, present: false, valid: false, codes: ['format.unsupported'] };
  const jumbf = new kind(buf).getManifestJUMBF();
  if (!jumbf) return { file, present: false, valid: false, codes: [] };
  let result;
  try {
    result = await ManifestStore.read(SuperBox.fromBuffer(jumbf)).validate(new kind(buf));
  } catch (e) {
    result = ValidationResult.fromError(e);
  }
  return { file, present: true, valid: result.isValid,
           codes: result.statusEntries.map((e) => e.code) };
}

let ok = true;
for (const file of process.argv.slice(2)) {
  let out;
  try {
    out = await check(file);
  } catch (e) {
    out = { file, present: false, valid: false, codes: ['read.failed'], error: String(e) };
  }
  ok = ok && out.valid;
  console.log(JSON.stringify(out));
}
process.exit(ok ? 0 : 1);
