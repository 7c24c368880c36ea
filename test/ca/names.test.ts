/**
 * What a certificate may name, without a TPM: subjects decoded from the CSR's DER (never from
 * printed text), template patterns matched against the whole value, multi-valued RDNs, repeated CNs
 * and values that look like separators, an attested host's own names, the names built from a host,
 * template defaults for subject binding and requesters, and which hosts a template admits.
 */
import "reflect-metadata";
import { test } from "node:test";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { hostAdmitted } from "../../src/ca/enroll.js";
import { checkHostNames, checkNames, checkRequest, hostNames, requestedNames } from "../../src/ca/issue.js";
import { decodeTemplate, wholeMatch } from "../../src/ca/templates.js";
import { TpmTrustError } from "../../src/errors.js";
import { parseCsr } from "../../src/verify/csr.js";

const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;

async function csr(name: x509.JsonName | string, dns: string[] = []) {
  const req = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams,
    extensions: dns.length ? [new x509.SubjectAlternativeNameExtension(dns.map((value) => ({ type: "dns" as const, value })))] : [],
  });
  return parseCsr(Buffer.from(req.rawData));
}

function refused(fn: () => void, rule: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TpmTrustError, String(e));
    assert.equal(e.code, "ERR_POLICY_FAILED", e.message);
    assert.equal(e.details?.rule, rule, e.message);
    return true;
  });
}

const corp = decodeTemplate({ name: "corp", subject: { pattern: "CN=[a-z0-9-]+\\.corp\\.example" }, subjectAltNames: { allowed: ["dns"], pattern: "[a-z0-9-]+\\.corp\\.example" } });

test("the subject is decoded from the DER: RDNs in order, every CN, canonical escaped text", async () => {
  const c = await csr([{ CN: ["a.corp.example"] }, { OU: ["CN=b, O=x"] }, { O: [" lead+trail "] }]);
  assert.deepEqual(c.commonNames, ["a.corp.example"]);
  assert.deepEqual(c.subjectRdns.map((r) => r.map((a) => a.name)), [["CN"], ["OU"], ["O"]]);
  assert.equal(c.subject, "CN=a.corp.example, OU=CN\\=b\\, O\\=x, O=\\ lead\\+trail\\ ");
  assert.deepEqual((await csr([{ CN: ["x"] }, { CN: ["y"] }])).commonNames, ["x", "y"]);
});

test("patterns match the whole value: an OU holding CN=…, a second CN, a multi-valued RDN or a longer SAN cannot pass", async () => {
  checkRequest(corp, await csr("CN=host1.corp.example", ["host1.corp.example"]));
  // issue 12: this passed CN=[a-z0-9-]+\.corp\.example while the pattern was searched for anywhere in the printed DN
  const smuggled = await csr([{ CN: ["login.bank.example"] }, { OU: ["CN=x.corp.example"] }]);
  refused(() => checkRequest(corp, smuggled), "subject.pattern");
  refused(() => checkRequest(corp, { ...smuggled, subjectRdns: [[{ type: "2.5.4.3", name: "CN", value: "login.bank.example, CN=x.corp.example" }]], subject: "" }), "subject.pattern");
  const twoCns = await csr([{ CN: ["x.corp.example"] }, { CN: ["login.bank.example"] }]);
  refused(() => checkRequest(corp, twoCns), "subject.structure");
  const multi = await csr([{ CN: ["x.corp.example"], OU: ["login.bank.example"] }]);
  assert.equal(multi.subjectRdns[0].length, 2);
  refused(() => checkRequest(corp, multi), "subject.structure");
  const longerSan = await csr("CN=x.corp.example", ["x.corp.example.bank.example"]);
  refused(() => checkRequest(corp, longerSan), "subjectAltNames.pattern");
  const longerCn = await csr("CN=x.corp.example.bank.example");
  refused(() => checkRequest(corp, longerCn), "subject.pattern");
  const noCn = await csr("O=no-cn");
  refused(() => checkRequest(decodeTemplate({ name: "n" }), noCn), "subject.requireCommonName");
  const san = await csr("CN=a", ["a"]);
  refused(() => checkRequest(decodeTemplate({ name: "n" }), san), "subjectAltNames.allowed");
});

test("a pattern cannot break out of its anchors; alternatives stay inside them", () => {
  assert.throws(() => decodeTemplate({ name: "n", subject: { pattern: ".*)|(x" } }), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_VALIDATION" && e.details?.field === "subject.pattern");
  const alt = wholeMatch("CN=a|CN=b");
  assert.ok(alt.test("CN=a") && alt.test("CN=b"));
  assert.ok(!alt.test("CN=a, CN=evil") && !alt.test("CN=evil, CN=b"));
  assert.ok(!wholeMatch("^CN=x").test("CN=xy"), "an operator's own ^ changes nothing");
});

test("an attested host's own names: every CN and every SAN is the host's name (DNS)", async () => {
  checkHostNames(requestedNames(await csr([{ CN: ["host-a"] }, { O: ["Example"] }], ["host-a"])), "host-a");
  checkHostNames(requestedNames(await csr("CN=HOST-A")), "host-a");
  refused(() => checkHostNames(requestedNames(csr0), "host-b"), "subject.host");
  refused(() => checkHostNames({ subject: [], sans: [{ type: "dns", value: "host-b" }] }, "host-a"), "subject.host");
  refused(() => checkHostNames({ subject: [], sans: [{ type: "ip", value: "10.0.0.1" }] }, "host-a"), "subject.host");
});
const csr0 = await csr("CN=host-a");

test("names built from a host: CN=<host>, and dns:<host> only when the template allows DNS SANs", () => {
  const plain = decodeTemplate({ name: "n", keyAttestation: { mode: "required" } });
  assert.deepEqual(hostNames(plain, "host-b"), { subject: [[{ type: "2.5.4.3", name: "CN", value: "host-b" }]], sans: [] });
  const dns = decodeTemplate({ name: "n", subjectAltNames: { allowed: ["dns", "ip"] }, keyAttestation: { mode: "required" } });
  assert.deepEqual(hostNames(dns, "host-b").sans, [{ type: "dns", value: "host-b" }]);
  checkNames(dns, hostNames(dns, "host-b"));
  refused(() => checkNames(corp, hostNames(corp, "host-b")), "subject.pattern");
});

test("template defaults: subject from the host when attestation is required, else from the request; hosts and admins may enrol, anonymous requesters not", () => {
  assert.equal(decodeTemplate({ name: "n", keyAttestation: { mode: "required" } }).subjectFrom, "host");
  assert.equal(decodeTemplate({ name: "n", keyAttestation: { mode: "required-if-capable" } }).subjectFrom, "request");
  assert.equal(decodeTemplate({ name: "n" }).subjectFrom, "request");
  assert.equal(decodeTemplate({ name: "n", subjectFrom: "host" }).subjectFrom, "host");
  assert.deepEqual(decodeTemplate({ name: "n" }).requesters, { hosts: true, hostClasses: [], hostTags: [], enrollers: [], admins: true, anonymous: false });
  for (const [doc, field] of [
    [{ subjectFrom: "csr" }, "subjectFrom"],
    [{ requesters: { anyone: true } }, "requesters.anyone"],
    [{ requesters: { anonymous: "yes" } }, "requesters.anonymous"],
    [{ requesters: { enrollers: ["a b"] } }, "requesters.enrollers"],
    [{ requesters: { hostTags: ["x", "x"] } }, "requesters.hostTags"],
  ] as const) {
    assert.throws(() => decodeTemplate({ name: "n", ...doc }), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_VALIDATION" && e.details?.field === field, JSON.stringify(doc));
  }
});

test("host requesters: any host by default; listed classes or tags; none when hosts is off", () => {
  const h = { hardwareClass: "gce-n1", tags: ["web"] };
  assert.ok(hostAdmitted(decodeTemplate({ name: "n" }), h));
  assert.ok(!hostAdmitted(decodeTemplate({ name: "n" }), undefined), "a host that is no longer registered");
  assert.ok(hostAdmitted(decodeTemplate({ name: "n", requesters: { hostClasses: ["gce-n1"] } }), h));
  assert.ok(hostAdmitted(decodeTemplate({ name: "n", requesters: { hostClasses: ["other"], hostTags: ["web"] } }), h));
  assert.ok(!hostAdmitted(decodeTemplate({ name: "n", requesters: { hostClasses: ["other"], hostTags: ["db"] } }), h));
  assert.ok(!hostAdmitted(decodeTemplate({ name: "n", requesters: { hosts: false } }), h));
});
