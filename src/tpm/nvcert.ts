import { TpmTrustError } from "../errors.js";

export interface NvCertificate {
  /** the DER certificate */
  der: Buffer;
  /** whether the `10 01 00 ‖ u16 length` prefix some TPMs store was removed */
  prefixed: boolean;
  /** bytes after the certificate (padding such as 0xFF fill) that were dropped */
  trailing: number;
}

function bad(message: string, offset: number): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_CERT", `EK certificate in NV: ${message} at offset ${offset}`, { offset });
}

/**
 * Extracts the DER certificate from the contents of an EK certificate NV index (TCG EK Credential
 * Profile §2.2.1): an optional `0x10 0x01 0x00 ‖ u16 BE length` header, then one DER SEQUENCE
 * whose own length decides where it ends; anything after it is padding.
 */
export function certificateFromNv(data: Uint8Array): NvCertificate {
  const buf = Buffer.from(data);
  let start = 0;
  let end = buf.length;
  const prefixed = buf.length >= 5 && buf[0] === 0x10 && buf[1] === 0x01 && buf[2] === 0x00;
  if (prefixed) {
    const len = buf.readUInt16BE(3);
    if (5 + len > buf.length) throw bad(`prefix announces ${len} bytes, only ${buf.length - 5} follow`, 3);
    start = 5;
    end = 5 + len;
  }
  if (end - start < 2 || buf[start] !== 0x30) throw bad("no DER SEQUENCE", start);
  // X.690 §8.1.3: definite length, short form or long form with up to 4 length bytes
  const first = buf[start + 1];
  let len: number;
  let header: number;
  if (first < 0x80) {
    len = first;
    header = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 4) throw bad(`unsupported DER length form 0x${first.toString(16)}`, start + 1);
    if (start + 2 + n > end) throw bad("truncated DER length", start + 1);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + 2 + i];
    header = 2 + n;
  }
  const total = header + len;
  if (start + total > end) throw bad(`DER SEQUENCE of ${total} bytes exceeds the ${end - start} available`, start);
  return { der: buf.subarray(start, start + total), prefixed, trailing: end - start - total + (buf.length - end) };
}

/**
 * The certificates of one EK certificate chain NV index (TCG EK Credential Profile 2.x §2.2.1.5,
 * indices 0x01C00100 … 0x01C001FF): one or several concatenated DER certificates, each optionally
 * with the `10 01 00 ‖ length` header. Parsing stops at fill bytes (0x00 or 0xFF) after the last.
 */
export function certificatesFromNvChain(data: Uint8Array): Buffer[] {
  const buf = Buffer.from(data);
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length && buf[at] !== 0xff && buf[at] !== 0x00) {
    const rest = buf.subarray(at);
    const { der, trailing } = certificateFromNv(rest);
    out.push(Buffer.from(der));
    at += rest.length - trailing;
  }
  for (let i = at; i < buf.length; i++) if (buf[i] !== 0xff && buf[i] !== 0x00) throw bad("bytes after the last certificate are not fill", i);
  return out;
}
