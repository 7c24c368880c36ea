import "reflect-metadata";
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import * as fc from "fast-check";
import * as asn from "@peculiar/asn1-x509";
import { AsnConvert } from "@peculiar/asn1-schema";
import { isTpmTrustError } from "../../../src/errors.js";
import { KeyObject } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { loadCertificate, loadCertificates, parseCertificateDer } from "../../../src/verify/ek/certificate.js";
import { ekHash, ekHashFromCertificate } from "../../../src/verify/ek/hash.js";
import { makeCa, makeLeaf, rawName, resign, tcgSan, tlv } from "./certgen.js";

const FIX = "test/fixtures/ek-certs";
const rsaEk = readFileSync(`${FIX}/infineon_rsa_ek.der`);
const eccEk = readFileSync(`${FIX}/infineon_ecc_ek.der`);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isTpmTrustError(e)) return e.code;
    throw e;
  }
  return "no error";
}

test("real Infineon EK certificates: TPM facts, EKU, key, empty subject", () => {
  for (const [der, alg] of [
    [rsaEk, "1.2.840.113549.1.1.1"],
    [eccEk, "1.2.840.10045.2.1"],
  ] as const) {
    const c = loadCertificate(der);
    assert.equal(c.der.length, der.length);
    assert.equal(c.version, 3);
    assert.equal(c.subject.rdns.length, 0);
    assert.match(c.label, /^\(no subject\) serial [0-9a-f]+ from Infineon OPTIGA\(TM\) (RSA|ECC) Manufacturing CA 035$/);
    assert.equal(c.publicKeyAlgorithm, alg);
    assert.deepEqual(c.tcg, {
      tpmManufacturer: "id:49465800",
      tpmVendorId: "IFX",
      tpmModel: "SLB 9670 TPM2.0",
      tpmVersion: "id:073f",
      tpmSpecification: { family: "2.0", level: 0, revision: 116 },
    });
    assert.deepEqual(c.extendedKeyUsage, ["2.23.133.8.1"]);
    assert.deepEqual(c.basicConstraints, { ca: false });
    assert.equal(c.extensions.find((e) => e.oid === "2.5.29.17")?.critical, true);
    assert.deepEqual(c.tolerances, []);
    assert.equal(c.notAfter.toISOString().slice(0, 10), "2033-03-01");
    // the exact TBS bytes as openssl sees them
    const text = execFileSync("openssl", ["x509", "-inform", "DER", "-noout", "-serial"], { input: der }).toString();
    assert.equal(text.trim().toLowerCase(), `serial=${c.serialNumber}`);
  }
  assert.equal(loadCertificate(rsaEk).serialNumber, "2fcc2d1e");
});

test("PEM, base64 and TRUSTED CERTIFICATE inputs give the same certificate", () => {
  const pem = execFileSync("openssl", ["x509", "-inform", "DER", "-outform", "PEM"], { input: rsaEk }).toString();
  assert.ok(loadCertificate(`Certificate:\n  some text\n${pem}`).der.equals(rsaEk));
  assert.ok(loadCertificate(rsaEk.toString("base64")).der.equals(rsaEk));
  const trusted = execFileSync("openssl", ["x509", "-inform", "DER", "-trustout", "-addtrust", "clientAuth"], { input: rsaEk }).toString();
  assert.match(trusted, /BEGIN TRUSTED CERTIFICATE/);
  assert.ok(loadCertificate(trusted).der.equals(rsaEk));
  const bundle = pem + execFileSync("openssl", ["x509", "-inform", "DER", "-outform", "PEM"], { input: eccEk }).toString();
  assert.equal(loadCertificates(bundle).length, 2);
  assert.equal(codeOf(() => loadCertificate(bundle)), "ERR_PARSE_CERT");
  assert.equal(codeOf(() => loadCertificate("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n")), "ERR_PARSE_CERT");
});

test("NV-prefixed and 0xFF-padded certificates load, and say so", () => {
  const header = Buffer.from([0x10, 0x01, 0x00, rsaEk.length >> 8, rsaEk.length & 0xff]);
  const nv = loadCertificate(Buffer.concat([header, rsaEk, Buffer.alloc(431, 0xff)]));
  assert.ok(nv.der.equals(rsaEk));
  assert.deepEqual(
    nv.tolerances.map((t) => [t.code, t.detail]),
    [
      ["nv-prefix", `header length ${rsaEk.length}`],
      ["ff-padding", "431 bytes"],
    ],
  );
  const junk = loadCertificate(Buffer.concat([eccEk, Buffer.from([0, 1, 2])]));
  assert.deepEqual(
    junk.tolerances.map((t) => t.code),
    ["trailing-bytes"],
  );
  // truncated certificate: the DER length overruns the input
  assert.equal(codeOf(() => loadCertificate(rsaEk.subarray(0, 600))), "ERR_PARSE_CERT");
  assert.equal(codeOf(() => loadCertificate(Buffer.alloc(0))), "ERR_PARSE_CERT");
  assert.equal(codeOf(() => loadCertificate(Buffer.from("hello, world"))), "ERR_PARSE_CERT");
});

test("vendor oddities are read and reported: serials, unsorted RDN sets, BER lengths, times", async () => {
  const ca = await makeCa({ name: "CN=Odd CA", slot: 1 });
  const leaf = await makeLeaf({ issuer: ca });

  const padded = loadCertificate(await resign(leaf.der, ca, (t) => (t.serialNumber = new Uint8Array([0, 0, 0x2f, 0xcc]).buffer)));
  assert.equal(padded.serialNumber, "00002fcc");
  assert.ok(padded.tolerances.some((t) => t.code === "non-minimal-serial"));
  const negative = loadCertificate(await resign(leaf.der, ca, (t) => (t.serialNumber = new Uint8Array([0x9f, 0x01]).buffer)));
  assert.ok(negative.tolerances.some((t) => t.code === "negative-serial"));

  // SET { CN, O, C } with the longer attribute first is not DER order
  const unsorted = loadCertificate(
    await resign(leaf.der, ca, (t) => {
      t.subject = rawName([
        [
          ["2.5.4.3", "NTC TPM EK Root CA 01 with a long name"],
          ["2.5.4.6", "TW"],
        ],
      ]);
    }),
  );
  assert.equal(unsorted.subject.text, "CN=NTC TPM EK Root CA 01 with a long name+C=TW");
  assert.ok(unsorted.tolerances.some((t) => t.code === "unsorted-rdn-set"));

  // UTCTime without seconds and a non-minimal length, spliced into the TBS bytes
  const noSeconds = loadCertificate(
    await resign(leaf.der, ca, undefined, (tbs) => {
      const hex = tbs.toString("hex");
      const nb = Buffer.from("200101000000Z").toString("hex");
      // Validity SEQUENCE (30 1e) of two 13-character UTCTimes; the first loses its seconds
      const at = hex.indexOf(`301e170d${nb}`);
      assert.ok(at > 0);
      const patched = hex.slice(0, at) + `301c170b${Buffer.from("2001010000Z").toString("hex")}` + hex.slice(at + 34);
      const body = Buffer.from(patched, "hex").subarray(4); // tbs header is 30 82 LL LL
      return tlv(0x30, body);
    }),
  );
  assert.equal(noSeconds.notBefore.toISOString(), "2020-01-01T00:00:00.000Z");
  assert.ok(noSeconds.tolerances.some((t) => t.code === "time-without-seconds"));

  const ber = Buffer.from(leaf.der);
  const version = ber.indexOf(Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]));
  const longForm = Buffer.concat([ber.subarray(0, version), Buffer.from([0xa0, 0x81, 0x03, 0x02, 0x01, 0x02]), ber.subarray(version + 5)]);
  // fix the two enclosing lengths (certificate and TBS both grew by one byte)
  longForm.writeUInt16BE(longForm.readUInt16BE(2) + 1, 2);
  longForm.writeUInt16BE(longForm.readUInt16BE(6) + 1, 6);
  const berCert = loadCertificate(longForm);
  assert.ok(berCert.tolerances.some((t) => t.code === "ber-length"));
});

test("SAN as three RDNs or one RDN of three attributes; notAfter 9999; empty subject with non-critical SAN", async () => {
  const ca = await makeCa({ name: "CN=SAN CA", slot: 1 });
  for (const rdns of [1, 3] as const) {
    const leaf = await makeLeaf({ issuer: ca, notAfter: new Date("9999-12-31T23:59:59Z") });
    const der = await resign(leaf.der, ca, (t) => {
      t.extensions = new asn.Extensions(
        t.extensions!.map((e) => (e.extnID === "2.5.29.17" ? AsnConvert.parse(tcgSan(["id:00001014", "swtpm", "id:20191023"], rdns, rdns === 3).rawData, asn.Extension) : e)),
      );
    });
    const c = loadCertificate(der);
    assert.equal(c.tcg.tpmManufacturer, "id:00001014");
    assert.equal(c.tcg.tpmModel, "swtpm");
    assert.equal(c.tcg.tpmVersion, "id:20191023");
    assert.equal(c.tcg.tpmVendorId, undefined); // 00001014 is not printable ASCII
    assert.equal(c.notAfter.toISOString(), "9999-12-31T23:59:59.000Z");
    assert.equal(c.altDirectoryNames[0].rdns.length, rdns);
    assert.equal(c.tolerances.some((t) => t.code === "empty-subject-noncritical-san"), rdns === 1);
  }
});

test("agrees with @peculiar/x509 on well-formed certificates; rejects the bad time it would misread", () => {
  for (const der of [rsaEk, eccEk]) {
    const ours = loadCertificate(der);
    const theirs = new x509.X509Certificate(der);
    assert.equal(ours.serialNumber, theirs.serialNumber);
    assert.equal(ours.issuer.text, theirs.issuer);
    assert.equal(ours.notBefore.getTime(), theirs.notBefore.getTime());
    assert.equal(ours.notAfter.getTime(), theirs.notAfter.getTime());
    assert.ok(ours.spki.equals(Buffer.from(theirs.publicKey.rawData)));
  }
  // notBefore "180301141933+" instead of "…Z": @peculiar/x509 returns a date in 1899
  const nb = Buffer.from("180301141933Z").toString("hex");
  const bad = Buffer.from(rsaEk.toString("hex").replace(nb, Buffer.from("180301141933+").toString("hex")), "hex");
  assert.equal(new x509.X509Certificate(bad).notBefore.getUTCFullYear(), 1899);
  assert.equal(codeOf(() => loadCertificate(bad)), "ERR_PARSE_CERT");
});

test("an old EK labelled id-RSAES-OAEP is read as RSA and reported", async () => {
  const ca = await makeCa({ name: "CN=OAEP CA", slot: 1 });
  const leaf = await makeLeaf({ issuer: ca, kind: "rsa", slot: 9 });
  const der = await resign(leaf.der, ca, (t) => (t.subjectPublicKeyInfo.algorithm = new asn.AlgorithmIdentifier({ algorithm: "1.2.840.113549.1.1.7" })));
  const c = loadCertificate(der);
  assert.equal(c.publicKeyAlgorithm, "1.2.840.113549.1.1.7");
  assert.deepEqual(
    c.tolerances.map((t) => t.code),
    ["rsa-oaep-spki"],
  );
  assert.equal(ekHashFromCertificate(c), ekHash(KeyObject.from(leaf.publicKey)));
});

test("malformed certificates are ERR_PARSE_CERT with an offset, never a crash", () => {
  const bad: Buffer[] = [
    Buffer.from([0x30, 0x80, 0, 0]), // indefinite length
    Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), // one element
    Buffer.from([0x30, 0x85, 1, 0, 0, 0, 0]), // length too long
  ];
  for (const b of bad) {
    try {
      parseCertificateDer(b);
      assert.fail("accepted");
    } catch (e) {
      assert.ok(isTpmTrustError(e) && e.code === "ERR_PARSE_CERT", String(e));
      assert.equal(typeof e.details?.offset, "number");
    }
  }
  // an impossible date
  const hex = rsaEk.toString("hex");
  const nb = Buffer.from("180301141933Z").toString("hex");
  const feb30 = Buffer.from(hex.replace(nb, Buffer.from("180230141933Z").toString("hex")), "hex");
  assert.equal(codeOf(() => loadCertificate(feb30)), "ERR_PARSE_CERT");
});

test("property: random byte flips and truncations of real certificates only ever throw TpmTrustError", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(rsaEk, eccEk),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.option(fc.nat()),
      (base, flips, cut) => {
        const b = Buffer.from(base);
        for (const [i, v] of flips) b[i % b.length] = v;
        const input = cut === null ? b : b.subarray(0, cut % (b.length + 1));
        try {
          loadCertificate(input);
        } catch (e) {
          if (!isTpmTrustError(e)) throw e;
        }
      },
    ),
    { numRuns: 1000 },
  );
});
