/**
 * Builds Outlook `.msg` files for tests: a CFB (OLE compound) file laid out as [MS-OXMSG] says —
 * one `__substg1.0_<id><type>` stream per variable-length MAPI property, fixed-length ones in
 * `__properties_version1.0` (32-byte header at the root, 8 in recipient and attachment storages,
 * 24 in an embedded message), `__recip_version1.0_#n` and `__attach_version1.0_#n` storages,
 * an embedded message in the `__substg1.0_3701000D` storage of its attachment, and the
 * `__nameid_version1.0` storage.
 */
import CFB from 'cfb';

export interface MsgAddress {
  name: string;
  email: string;
}

export type MsgAttachment = { fileName: string; content: Uint8Array } | { fileName: string; message: MsgSpec };

export interface MsgSpec {
  subject?: string;
  from?: MsgAddress;
  to?: MsgAddress[];
  cc?: MsgAddress[];
  /** Sent at (PidTagClientSubmitTime). */
  date?: Date;
  /** Plain body (PidTagBody). */
  body?: string;
  /** HTML body (PidTagHtml, binary, UTF-8). */
  html?: string;
  messageId?: string;
  attachments?: MsgAttachment[];
}

const PT_LONG = 0x0003;
const PT_BOOLEAN = 0x000b;
const PT_SYSTIME = 0x0040;
const PT_UNICODE = 0x001f;
const PT_BINARY = 0x0102;
const PT_OBJECT = 0x000d;

/** Writes the CFB file of `spec`. */
export function makeMsg(spec: MsgSpec): Uint8Array {
  const cfb = CFB.utils.cfb_new();
  writeMessage(cfb, '/', spec, 'root');
  const nameid = '/__nameid_version1.0/';
  for (const id of ['0002', '0003', '0004']) CFB.utils.cfb_add(cfb, `${nameid}__substg1.0_${id}0102`, Buffer.alloc(0));
  CFB.utils.cfb_del(cfb, '/\u0001Sh33tJ5'); // the placeholder cfb_new adds
  return new Uint8Array(CFB.write(cfb, { type: 'buffer' }) as Buffer);
}

const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
const utf16 = (s: string) => Buffer.from(s, 'utf16le');

/** Fixed-length entries of a property stream: 16 bytes each (tag, flags, 8 bytes of value). */
class PropertyStream {
  readonly #entries: Buffer[] = [];
  add(id: number, type: number, value: Buffer | number | bigint): void {
    const entry = Buffer.alloc(16);
    entry.writeUInt32LE(((id << 16) | type) >>> 0, 0);
    entry.writeUInt32LE(0x2 | 0x4, 4); // PROPATTR_READABLE | PROPATTR_WRITABLE
    if (typeof value === 'bigint') entry.writeBigUInt64LE(value, 8);
    else if (typeof value === 'number') entry.writeUInt32LE(value >>> 0, 8);
    else entry.writeUInt32LE(value.length, 8); // variable length: the size of its stream
    this.#entries.push(entry);
  }
  bytes(header: Buffer): Buffer {
    return Buffer.concat([header, ...this.#entries]);
  }
}

function writeMessage(cfb: CFB.CFB$Container, dir: string, spec: MsgSpec, kind: 'root' | 'embedded'): void {
  const props = new PropertyStream();
  const string = (id: number, value: string | undefined) => {
    if (value === undefined) return;
    const bytes = utf16(value);
    CFB.utils.cfb_add(cfb, `${dir}__substg1.0_${hex4(id)}${hex4(PT_UNICODE)}`, bytes);
    props.add(id, PT_UNICODE, bytes);
  };
  const binary = (id: number, bytes: Buffer) => {
    CFB.utils.cfb_add(cfb, `${dir}__substg1.0_${hex4(id)}${hex4(PT_BINARY)}`, bytes);
    props.add(id, PT_BINARY, bytes);
  };

  string(0x001a, 'IPM.Note'); // PidTagMessageClass
  string(0x0037, spec.subject);
  if (spec.from) {
    string(0x0c1a, spec.from.name); // PidTagSenderName
    string(0x0c1e, 'SMTP'); // PidTagSenderAddressType
    string(0x0c1f, spec.from.email); // PidTagSenderEmailAddress
    string(0x5d01, spec.from.email); // PidTagSenderSmtpAddress
  }
  const display = (list: MsgAddress[] | undefined) => list?.map((a) => a.name).join('; ');
  string(0x0e04, display(spec.to)); // PidTagDisplayTo
  string(0x0e03, display(spec.cc)); // PidTagDisplayCc
  string(0x1000, spec.body);
  if (spec.html !== undefined) binary(0x1013, Buffer.from(spec.html, 'utf8'));
  string(0x1035, spec.messageId);
  if (spec.date) props.add(0x0039, PT_SYSTIME, (BigInt(spec.date.getTime()) + 11_644_473_600_000n) * 10_000n);
  props.add(0x0e07, PT_LONG, 0x1); // PidTagMessageFlags: mfRead

  const recipients = [...(spec.to ?? []).map((a) => ({ ...a, type: 1 })), ...(spec.cc ?? []).map((a) => ({ ...a, type: 2 }))];
  recipients.forEach((r, i) => {
    const rdir = `${dir}__recip_version1.0_#${hex8(i)}/`;
    const rprops = new PropertyStream();
    const rstring = (id: number, value: string) => {
      const bytes = utf16(value);
      CFB.utils.cfb_add(cfb, `${rdir}__substg1.0_${hex4(id)}${hex4(PT_UNICODE)}`, bytes);
      rprops.add(id, PT_UNICODE, bytes);
    };
    rstring(0x3001, r.name); // PidTagDisplayName
    rstring(0x3002, 'SMTP'); // PidTagAddressType
    rstring(0x3003, r.email); // PidTagEmailAddress
    rstring(0x39fe, r.email); // PidTagSmtpAddress
    rprops.add(0x0c15, PT_LONG, r.type); // PidTagRecipientType: 1 to, 2 cc
    rprops.add(0x3000, PT_LONG, i); // PidTagRowid
    CFB.utils.cfb_add(cfb, `${rdir}__properties_version1.0`, rprops.bytes(Buffer.alloc(8)));
  });

  const attachments = spec.attachments ?? [];
  attachments.forEach((a, i) => {
    const adir = `${dir}__attach_version1.0_#${hex8(i)}/`;
    const aprops = new PropertyStream();
    const astring = (id: number, value: string) => {
      const bytes = utf16(value);
      CFB.utils.cfb_add(cfb, `${adir}__substg1.0_${hex4(id)}${hex4(PT_UNICODE)}`, bytes);
      aprops.add(id, PT_UNICODE, bytes);
    };
    astring(0x3707, a.fileName); // PidTagAttachLongFilename
    astring(0x3704, a.fileName.slice(0, 12)); // PidTagAttachFilename
    const dot = a.fileName.lastIndexOf('.');
    if (dot >= 0) astring(0x3703, a.fileName.slice(dot)); // PidTagAttachExtension
    astring(0x3001, a.fileName); // PidTagDisplayName
    aprops.add(0x0e21, PT_LONG, i); // PidTagAttachNumber
    aprops.add(0x7ffe, PT_BOOLEAN, 0); // PidTagAttachmentHidden
    if ('message' in a) {
      aprops.add(0x3705, PT_LONG, 5); // PidTagAttachMethod: afEmbeddedMessage
      aprops.add(0x3701, PT_OBJECT, 0xffffffff);
      writeMessage(cfb, `${adir}__substg1.0_3701000D/`, a.message, 'embedded');
    } else {
      aprops.add(0x3705, PT_LONG, 1); // afByValue
      const bytes = Buffer.from(a.content);
      CFB.utils.cfb_add(cfb, `${adir}__substg1.0_37010102`, bytes);
      aprops.add(0x3701, PT_BINARY, bytes);
      aprops.add(0x0e20, PT_LONG, bytes.length); // PidTagAttachSize
    }
    CFB.utils.cfb_add(cfb, `${adir}__properties_version1.0`, aprops.bytes(Buffer.alloc(8)));
  });

  // Root: 8 reserved, next recipient id, next attachment id, recipient count, attachment count, 8 reserved.
  // Embedded message: the same without the last 8 reserved bytes.
  const header = Buffer.alloc(kind === 'root' ? 32 : 24);
  header.writeUInt32LE(recipients.length, 8);
  header.writeUInt32LE(attachments.length, 12);
  header.writeUInt32LE(recipients.length, 16);
  header.writeUInt32LE(attachments.length, 20);
  CFB.utils.cfb_add(cfb, `${dir}__properties_version1.0`, props.bytes(header));
}
