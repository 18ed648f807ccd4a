// The guest assembler, checked against iced-x86's decoder (an independent oracle) and against
// encodings written out from the SDM's opcode tables.
import { Decoder, DecoderOptions, Formatter, FormatterSyntax, Mnemonic, OpKind, Register } from 'iced-x86';
import type { Instruction } from 'iced-x86';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { assemble, assembleOrThrow } from './assembler.ts';

const formatter = new Formatter(FormatterSyntax.Nasm);
formatter.hexPrefix = '0x';
formatter.hexSuffix = '';
formatter.uppercaseHex = false;
formatter.spaceAfterOperandSeparator = true;
formatter.branchLeadingZeros = false;
formatter.smallHexNumbersInDecimal = false;
formatter.showBranchSize = false;
afterAll(() => formatter.free());

/** Decode every instruction in `bytes` and return iced's NASM-syntax text for each. */
function decodeAll(bytes: Uint8Array, bits: 16 | 32 | 64, ip: number): string[] {
  const d = new Decoder(bits, bytes, DecoderOptions.None);
  d.ip = BigInt(ip);
  const out: string[] = [];
  while (d.canDecode) {
    const ins = d.decode();
    out.push(formatter.format(ins));
    ins.free();
  }
  d.free();
  return out;
}

function withDecoded<T>(bytes: Uint8Array, bits: 16 | 32 | 64, ip: number, f: (ins: Instruction) => T): T {
  const d = new Decoder(bits, bytes, DecoderOptions.None);
  d.ip = BigInt(ip);
  const ins = d.decode();
  try {
    expect(ins.length).toBe(bytes.length); // exactly one instruction, fully consumed
    return f(ins);
  } finally {
    ins.free();
    d.free();
  }
}

/** NASM's register name → iced's Register (iced spells r8b as R8L). */
function icedRegister(name: string): Register {
  return Register[name.toUpperCase().replace(/^(R\d+)B$/, '$1L') as keyof typeof Register];
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

describe('round trip through iced-x86', () => {
  // [source, what iced's NASM formatter prints for the decoded bytes]
  const cases64: [string, string][] = [
    ['mov rax, rbx', 'mov rax, rbx'],
    ['add rax, 1', 'add rax, 0x1'],
    ['sub r9d, 0x12345', 'sub r9d, 0x12345'],
    ['mov byte [rbx+rcx*4+8], 0xff', 'mov byte [rbx+rcx*4+0x8], 0xff'],
    ['mov word [rsp], 7', 'mov word [rsp], 0x7'],
    ['mov rax, fs:[rax]', 'mov rax, [fs:rax]'],
    ['lea rdi, [rsi + 2*rdx - 16]', 'lea rdi, [rsi+rdx*2-0x10]'],
    ['mov eax, [0x1000]', 'mov eax, [0x1000]'],
    ['movzx eax, byte [rsi]', 'movzx eax, byte [rsi]'],
    ['movsx rax, word [rsi]', 'movsx rax, word [rsi]'],
    ['movsxd rax, dword [rsi]', 'movsxd rax, [rsi]'],
    ['imul rax, rbx, 10', 'imul rax, rbx, 0xa'],
    ['shl rax, cl', 'shl rax, cl'],
    ['sar edx, 3', 'sar edx, 0x3'],
    ['xchg rax, [rbx]', 'xchg rax, [rbx]'],
    ['push qword [rax]', 'push qword [rax]'],
    ['pop r12', 'pop r12'],
    ['jmp [rax]', 'jmp qword [rax]'],
    ['call rax', 'call rax'],
    ['lock add [rbx], eax', 'lock add [rbx], eax'],
    ['rep movsb', 'rep movsb'],
    ['rep stosq', 'rep stosq'],
    ['repne scasb', 'repne scasb'],
    ['in al, dx', 'in al, dx'],
    ['out 0xe9, al', 'out 0xe9, al'],
    ['in eax, 0x60', 'in eax, 0x60'],
    ['mov cr3, rax', 'mov cr3, rax'],
    ['mov rax, cr0', 'mov rax, cr0'],
    ['mov dr7, rbx', 'mov dr7, rbx'],
    ['mov ds, ax', 'mov ds, eax'], // 8E D8: no operand-size prefix (iced names the r32/m16 operand eax)
    ['mov ax, ss', 'mov ax, ss'],
    ['test rax, [rbx]', 'test [rbx], rax'],
    ['lgdt [rax]', 'lgdt [rax]'],
    ['lidt [rbx+8]', 'lidt [rbx+0x8]'],
    ['ltr ax', 'ltr ax'],
    ['invlpg [rdi]', 'invlpg [rdi]'],
    ['cpuid', 'cpuid'],
    ['rdmsr', 'rdmsr'],
    ['wrmsr', 'wrmsr'],
    ['rdtscp', 'rdtscp'],
    ['hlt', 'hlt'],
    ['pause', 'pause'],
    ['int3', 'int3'],
    ['int1', 'int1'],
    ['int 0x80', 'int 0x80'],
    ['ud2', 'ud2'],
    ['iretq', 'iretq'],
    ['cqo', 'cqo'],
    ['setnz al', 'setne al'],
    ['cmovz rax, rbx', 'cmove rax, rbx'],
    ['bts qword [rax], 5', 'bts qword [rax], 0x5'],
    ['xsetbv', 'xsetbv'],
    ['clflush [rax]', 'clflush [rax]'],
    ['vmxon [rax]', 'vmxon [rax]'],
    ['vmclear [rbx]', 'vmclear [rbx]'],
    ['vmptrld qword [rcx]', 'vmptrld [rcx]'],
    ['vmptrst [rdx]', 'vmptrst [rdx]'],
    ['vmread rax, rbx', 'vmread rax, rbx'],
    ['vmread [rdi], rsi', 'vmread [rdi], rsi'],
    ['vmwrite rbx, rax', 'vmwrite rbx, rax'],
    ['vmwrite rbx, [rcx]', 'vmwrite rbx, [rcx]'],
    ['vmlaunch', 'vmlaunch'],
    ['vmresume', 'vmresume'],
    ['vmxoff', 'vmxoff'],
    ['vmcall', 'vmcall'],
    ['vmfunc', 'vmfunc'],
    ['invept rax, [rbx]', 'invept rax, [rbx]'],
    ['invvpid rcx, [rdx]', 'invvpid rcx, [rdx]'],
  ];
  it.each(cases64)('%s', (source, expected) => {
    const { bytes } = assembleOrThrow(source, { origin: 0x1000 });
    expect(decodeAll(bytes, 64, 0x1000)).toEqual([expected]);
  });

  it('encodes like the SDM opcode tables (spot checks)', () => {
    const bytesOf = (s: string, bits: 16 | 32 | 64 = 64) => hex(assembleOrThrow(s, { bits }).bytes);
    expect(bytesOf('add rax, 1')).toBe('4883c001'); // REX.W 83 /0 ib — the short form is chosen
    expect(bytesOf('add eax, 0x12345678')).toBe('0578563412'); // 05 id, the EAX form
    expect(bytesOf('mov ecx, 10')).toBe('b90a000000'); // B8+rd id
    expect(bytesOf('mov rax, 0x123456789')).toBe('48b88967452301000000'); // REX.W B8+rd io
    expect(bytesOf('vmxon [rax]')).toBe('f30fc730'); // F3 0F C7 /6
    expect(bytesOf('vmclear [rax]')).toBe('660fc730'); // 66 0F C7 /6
    expect(bytesOf('vmptrld [rax]')).toBe('0fc730'); // NP 0F C7 /6
    expect(bytesOf('vmlaunch')).toBe('0f01c2');
    expect(bytesOf('vmresume')).toBe('0f01c3');
    expect(bytesOf('vmxoff')).toBe('0f01c4');
    expect(bytesOf('vmcall')).toBe('0f01c1');
    expect(bytesOf('vmfunc')).toBe('0f01d4');
    expect(bytesOf('invept rax, [rbx]')).toBe('660f388003');
    expect(bytesOf('invvpid rax, [rbx]')).toBe('660f388103');
    expect(bytesOf('shl rax, 1')).toBe('48d1e0'); // D1 /4, the "by one" form
    expect(bytesOf('push 5')).toBe('6a05');
    expect(bytesOf('pushf')).toBe('9c'); // PUSHFQ in 64-bit code
    expect(bytesOf('pushf', 16)).toBe('9c');
    expect(bytesOf('pushf', 32)).toBe('9c');
    expect(bytesOf('iretq')).toBe('48cf');
    expect(bytesOf('mov eax, 1', 16)).toBe('66b801000000');
    expect(bytesOf('ltr ax')).toBe('0f00d8'); // 0F 00 /3, no 66 prefix
    expect(bytesOf('mov ds, ax', 32)).toBe('8ed8');
    expect(bytesOf('mov ds, ax', 16)).toBe('8ed8');
    expect(bytesOf('mov ax, ss')).toBe('668cd0'); // a 16-bit destination keeps 66: bits 31:16 must not change
  });

  it('reads size keywords on immediates as the operand size, or the field size with strict (NASM)', () => {
    const bytesOf = (s: string) => hex(assembleOrThrow(s).bytes);
    expect(bytesOf('push word 5')).toBe('666a05'); // 66 6A ib: 16-bit push
    expect(bytesOf('push qword 5')).toBe('6a05');
    expect(bytesOf('add eax, dword 5')).toBe('83c005'); // still the short imm8 form
    expect(bytesOf('add eax, strict dword 5')).toBe('0505000000'); // imm32 forced
  });

  it('honours short and near on branches', () => {
    const bytesOf = (s: string) => hex(assembleOrThrow(s).bytes);
    expect(bytesOf('jmp near $+5')).toBe('e900000000');
    expect(bytesOf('jz near x\nx:')).toBe('0f8400000000');
    expect(bytesOf('jmp short $+2')).toBe('eb00');
    const r = assemble('jmp short x\ntimes 200 nop\nx:');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]).toMatchObject({ line: 1, message: expect.stringContaining('too far') });
  });

  it('chooses 64-bit absolute [disp32] unless rel or default rel', () => {
    const abs = assembleOrThrow('mov rax, [target]\ntarget: dq 0', { origin: 0x2000 });
    const absAddr = withDecoded(abs.bytes.slice(0, 8), 64, 0x2000, (i) => {
      expect(i.memoryBase).toBe(Register.None);
      return i.memoryDisplacement;
    });
    expect(absAddr).toBe(BigInt(abs.labels.get('target')!));

    for (const src of ['mov rax, [rel target]\ntarget: dq 0', 'default rel\nmov rax, [target]\ntarget: dq 0']) {
      const r = assembleOrThrow(src, { origin: 0x2000 });
      const t = r.labels.get('target')!;
      withDecoded(r.bytes.slice(0, t - 0x2000), 64, 0x2000, (i) => {
        expect(i.memoryBase).toBe(Register.RIP);
        expect(i.memoryDisplacement).toBe(BigInt(t)); // iced reports the RIP-relative target
      });
    }
  });
});

describe('the instructions the emulated CPU implements', () => {
  // [source, iced's mnemonic for the decoded bytes]. Every line must decode to exactly one instruction.
  const table: [string, string][] = [
    ['mov al, [0x1000]', 'mov'], ['mov ss, ax', 'mov'], ['mov rax, cr8', 'mov'], ['mov dr6, rax', 'mov'],
    ['movzx ecx, word [rax]', 'movzx'], ['movsx eax, bl', 'movsx'], ['movsxd rax, ecx', 'movsxd'],
    ['lea eax, [rbx+rcx]', 'lea'], ['xchg eax, ebx', 'xchg'],
    ['push fs', 'push'], ['pop gs', 'pop'], ['push 0x12345678', 'push'], ['pop qword [rbx]', 'pop'],
    ['pushfq', 'pushfq'], ['popf', 'popfq'],
    ['adc rax, rbx', 'adc'], ['sbb ecx, 5', 'sbb'], ['and byte [rax], 0x0f', 'and'], ['or rax, [rbx]', 'or'],
    ['test qword [rax], 0x100', 'test'], ['inc byte [rax]', 'inc'], ['dec r10', 'dec'], ['neg rax', 'neg'],
    ['not dword [rbx]', 'not'], ['rol eax, 1', 'rol'], ['ror rax, cl', 'ror'], ['rcl bl, 3', 'rcl'],
    ['rcr word [rax], 1', 'rcr'], ['shr rdx, 63', 'shr'], ['sar r8, 1', 'sar'], ['sal eax, 2', 'shl'],
    ['mul rbx', 'mul'], ['imul rcx', 'imul'], ['imul rax, [rbx]', 'imul'], ['div byte [rax]', 'div'], ['idiv r9', 'idiv'],
    ['cbw', 'cbw'], ['cwde', 'cwde'], ['cdqe', 'cdqe'], ['cwd', 'cwd'], ['cdq', 'cdq'],
    ['ret', 'ret'], ['ret 16', 'ret'], ['retf', 'retf'], ['call [rax+8]', 'call'], ['jmp rax', 'jmp'],
    ['loop $', 'loop'], ['jrcxz $', 'jrcxz'], ['jnae $', 'jb'], ['jpo $', 'jnp'],
    ['seto al', 'seto'], ['setc byte [rax]', 'setb'], ['cmovna ecx, edx', 'cmovbe'],
    ['bt eax, 3', 'bt'], ['bts [rax], rbx', 'bts'], ['btr rax, rcx', 'btr'], ['btc dword [rax], 31', 'btc'],
    ['bsf rax, rbx', 'bsf'], ['bsr eax, [rbx]', 'bsr'], ['pause', 'pause'],
    ['cli', 'cli'], ['sti', 'sti'], ['cld', 'cld'], ['std', 'std'], ['clc', 'clc'], ['stc', 'stc'], ['cmc', 'cmc'],
    ['in ax, dx', 'in'], ['out dx, eax', 'out'], ['in al, 0x60', 'in'], ['out 0x80, eax', 'out'],
    ['insb', 'insb'], ['rep insw', 'insw'], ['outsd', 'outsd'], ['movsw', 'movsw'], ['movsd', 'movsd'],
    ['lodsq', 'lodsq'], ['repe cmpsb', 'cmpsb'], ['scasd', 'scasd'], ['xlatb', 'xlatb'],
    ['rdtsc', 'rdtsc'], ['sgdt [rax]', 'sgdt'], ['sidt [rax]', 'sidt'], ['lldt ax', 'lldt'], ['sldt ax', 'sldt'],
    ['str eax', 'str'], ['ltr [rax]', 'ltr'], ['invd', 'invd'], ['wbinvd', 'wbinvd'],
    ['leave', 'leave'], ['enter 32, 0', 'enter'], ['lock xadd [rax], ebx', 'xadd'], ['lock cmpxchg [rax], rcx', 'cmpxchg'],
  ];
  it.each(table)('%s', (source, mnemonic) => {
    const { bytes } = assembleOrThrow(source, { origin: 0x1000 });
    withDecoded(bytes, 64, 0x1000, (ins) => expect(Mnemonic[ins.mnemonic]!.toLowerCase()).toBe(mnemonic));
  });

  it('encodes [rip + disp] with the displacement counted from the next instruction', () => {
    const { bytes } = assembleOrThrow('lea rax, [rip + 0x10]', { origin: 0x1000 });
    expect(hex(bytes)).toBe('488d0510000000'); // REX.W 8D /r, ModRM 05 = RIP + disp32
    expect(errorsOfSource('bits 32\nlea eax, [rip + 4]')[0]!.message).toContain('64-bit mode');
  });
});

function errorsOfSource(src: string) {
  const r = assemble(src);
  if (r.ok) throw new Error('expected errors');
  return r.errors;
}

describe('labels and layout', () => {
  it('resolves backward and forward branches, short when in reach and near otherwise', () => {
    const src = `
      start:  jmp fwd          ; forward, short
      back:   nop
              jz back          ; backward, short
              jmp far_away     ; forward, beyond rel8: near
      fwd:    times 200 nop
      far_away:
              call start
    `;
    const r = assembleOrThrow(src, { origin: 0x4000 });
    const L = (n: string) => r.labels.get(n)!;
    expect(L('start')).toBe(0x4000);
    const targetAt = (addr: number, len: number) =>
      withDecoded(r.bytes.slice(addr - 0x4000, addr - 0x4000 + len), 64, addr, (i) => Number(i.nearBranch64));
    expect(r.bytes[0]).toBe(0xeb); // short JMP
    expect(targetAt(0x4000, 2)).toBe(L('fwd'));
    expect(targetAt(L('back') + 1, 2)).toBe(L('back'));
    expect(r.bytes[L('back') + 3 - 0x4000]).toBe(0xe9); // near JMP rel32
    expect(targetAt(L('back') + 3, 5)).toBe(L('far_away'));
    expect(targetAt(L('far_away'), 5)).toBe(L('start'));
  });

  it('scopes .local labels to the previous global label', () => {
    const r = assembleOrThrow('a:\n.x: nop\nb:\n.x: nop\n jmp .x\n jmp a.x', { origin: 0 });
    expect(r.labels.get('a.x')).toBe(0);
    expect(r.labels.get('b.x')).toBe(1);
    expect(decodeAll(r.bytes.slice(2), 64, 2)).toEqual(['jmp 0x1', 'jmp 0x0']);
  });

  it('supports times, align, org padding, db strings, dw/dd/dq, equ, $ and $$', () => {
    const src = `
      org 0x100
      COUNT equ 3
      db 'AB', "C", 0
      times COUNT db 0xee
      align 8, db 0
      here: dw here - $$, -1
      dd 0x11223344
      dq 0x8877665544332211
      org 0x120
      db $ - $$
    `;
    const r = assembleOrThrow(src);
    expect(hex(r.bytes)).toBe(
      '41424300' + 'eeeeee' + '00' + '0800' + 'ffff' + '44332211' + '1122334455667788' + '0000000000000000' + '20',
    );
    expect(r.labels.get('here')).toBe(0x108);
  });

  it('understands C escapes in backquoted strings, and a ; inside a string is not a comment', () => {
    const r = assembleOrThrow("db `Hi\\n\\x41\\0;\\``, 'a;b' ; comment", { origin: 0 });
    expect(hex(r.bytes)).toBe('48690a41003b60' + '613b62');
  });

  it('pads align with NOPs by default, and times repeats an instruction', () => {
    const r = assembleOrThrow('nop\nalign 4\ntimes 2 inc eax', { origin: 0 });
    expect(hex(r.bytes)).toBe('90909090' + 'ffc0ffc0');
  });

  it('uses a forward equ and a label in data', () => {
    const r = assembleOrThrow('dq table + SIZE\ntable: dd 1\nSIZE equ 4', { origin: 0x10 });
    expect(hex(r.bytes.slice(0, 8))).toBe('1c00000000000000');
  });

  it('gives a listing with addresses and bytes per line', () => {
    const r = assembleOrThrow('start:\n  mov eax, 1\n  hlt', { origin: 0x7c00 });
    expect(r.listing.map((l) => [l.line, l.address, hex(l.bytes)])).toEqual([
      [1, 0x7c00, ''],
      [2, 0x7c00, 'b801000000'],
      [3, 0x7c05, 'f4'],
    ]);
  });
});

describe('mixed code sizes', () => {
  it('assembles a real → protected → long mode trampoline', () => {
    const src = `
      bits 16
      org 0x8000
      rm:   cli
            lgdt [gdtr]
            mov eax, cr0
            or eax, 1
            mov cr0, eax
            jmp 0x08:pm          ; ptr16:16, reloads CS
      bits 32
      pm:   mov ax, 0x10
            mov ds, ax
            mov eax, cr4
            or eax, 1 << 5       ; CR4.PAE
            mov cr4, eax
            jmp 0x18:lm          ; ptr16:32
      bits 64
      lm:   mov rax, 0x1122334455667788
            hlt
      gdtr: dw 0x1f
            dd gdt
      gdt:  dq 0
    `;
    const r = assembleOrThrow(src);
    const L = (n: string) => r.labels.get(n)!;
    const part = (from: string, to: string) => r.bytes.slice(L(from) - 0x8000, L(to) - 0x8000);
    expect(decodeAll(part('rm', 'pm'), 16, L('rm'))).toEqual([
      'cli',
      `lgdt [0x${L('gdtr').toString(16)}]`,
      'mov eax, cr0',
      'or eax, 0x1',
      'mov cr0, eax',
      `jmp 0x8:0x${L('pm').toString(16)}`,
    ]);
    expect(decodeAll(part('pm', 'lm'), 32, L('pm'))).toEqual([
      'mov ax, 0x10',
      'mov ds, eax', // 8E D8 — iced names the r32/m16 operand by its 32-bit register
      'mov eax, cr4',
      'or eax, 0x20',
      'mov cr4, eax',
      `jmp 0x18:0x${L('lm').toString(16)}`,
    ]);
    expect(decodeAll(part('lm', 'gdtr'), 64, L('lm'))).toEqual(['mov rax, 0x1122334455667788', 'hlt']);
    // The far JMP in 32-bit code carries a 4-byte offset (EA cd cw), the one in 16-bit code 2 bytes.
    expect(part('pm', 'lm').slice(-7)[0]).toBe(0xea);
    expect(part('rm', 'pm').slice(-5)[0]).toBe(0xea);
    expect(hex(part('gdtr', 'gdt'))).toBe('1f00' + L('gdt').toString(16).padStart(8, '0').match(/../g)!.reverse().join(''));
  });

  it('uses 16-bit addressing in 16-bit code', () => {
    const r = assembleOrThrow('bits 16\nmov ax, [bx+si+4]\nmov [di], al', { origin: 0 });
    expect(decodeAll(r.bytes, 16, 0)).toEqual(['mov ax, [bx+si+0x4]', 'mov [di], al']);
  });
});

describe('errors are values with line numbers', () => {
  const errorsOf = (src: string) => {
    const r = assemble(src);
    if (r.ok) throw new Error('expected errors');
    return r.errors;
  };

  it('reports unknown mnemonics, bad operands, undefined labels and ranges', () => {
    const errors = errorsOf('nop\nfrobnicate rax\nmov rax, rbx, rcx\njmp nowhere\nmov al, 300\ninc [rax]\ndb 256\nmov ah, r8b');
    expect(errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    expect(errors[0]!.message).toContain("unknown instruction 'frobnicate'");
    expect(errors[1]!.message).toContain("invalid operands for 'mov'");
    expect(errors[2]!.message).toContain("undefined symbol 'nowhere'");
    expect(errors[3]!.message).toContain('out of range');
    expect(errors[4]!.message).toContain('operation size not specified');
    expect(errors[5]!.message).toContain('does not fit in 1 byte');
    expect(errors[6]!.message).toContain('REX');
  });

  it('reports syntax errors together with the other lines\' errors, in line order', () => {
    const errors = errorsOf('jmp nowhere\r\nmov rax, (\r\nbogus');
    expect(errors.map((e) => e.line)).toEqual([1, 2, 3]);
  });

  it('reports syntax errors with a column', () => {
    const [e] = errorsOf('\n  mov rax, [rbx + ]');
    expect(e!.line).toBe(2);
    expect(e!.message).toMatch(/expression expected|unexpected/);
  });

  it('rejects instructions not valid in the current mode', () => {
    expect(errorsOf('bits 32\nmov rax, 1')[0]!.message).toContain("invalid operands for 'mov'");
    expect(errorsOf('bits 16\nrep stosq')[0]!.message).toContain('not valid in 16-bit code');
    expect(errorsOf('jmp 0x08:0x1000')[0]!.message).toContain("invalid operands for 'jmp'");
  });

  it('reports duplicate labels, short branches out of reach are never chosen, odd alignment', () => {
    expect(errorsOf('a: nop\na: nop')[0]!.message).toContain("'a' defined twice");
    expect(errorsOf('align 3')[0]!.message).toContain('power of two');
    expect(errorsOf('loop far\ntimes 300 nop\nfar: nop')[0]!.line).toBe(1); // LOOP has only rel8
  });

  it('rejects a bad origin', () => {
    expect(assemble('nop', { origin: -1 })).toMatchObject({ ok: false, errors: [{ line: 0 }] });
  });

  it('assembleOrThrow lists file:line: message', () => {
    expect(() => assembleOrThrow('nop\nbogus', { fileName: 'guest.asm' })).toThrow(/^guest\.asm:2: unknown instruction 'bogus'$/);
    expect(() => assembleOrThrow('bogus\nmov al, #')).toThrow(/^<asm>:1: unknown instruction 'bogus'\n<asm>:2: unexpected character '#'$/);
  });

  it('random instruction-shaped lines: errors are explained, and what assembles decodes back', () => {
    const mnemonics = ['mov', 'add', 'sub', 'xor', 'cmp', 'test', 'adc', 'inc', 'neg', 'shl', 'rcr', 'imul', 'div', 'push',
      'pop', 'xchg', 'lea', 'movzx', 'movsxd', 'jmp', 'call', 'ret', 'jz', 'loop', 'bts', 'bsr', 'in', 'out', 'lgdt',
      'ltr', 'str', 'invlpg', 'int', 'vmread', 'vmwrite', 'vmxon', 'vmptrld', 'invept', 'cmovz', 'setnz', 'enter', 'retf'];
    const operand = fc.oneof(
      fc.constantFrom('rax', 'eax', 'ax', 'al', 'ah', 'r9d', 'r11b', 'cs', 'ds', 'cr3', 'dr7', 'rsp', 'bx', 'si'),
      fc.constantFrom('0', '1', '-1', '300', '0x12345', '0xffffffffffffffff', 'label', '$', '0x08:0x1000'),
      fc.tuple(fc.constantFrom('', 'byte ', 'word ', 'dword ', 'qword ', 'far ', 'oword '),
        fc.constantFrom('[rax]', '[rel label]', '[0x1000]', '[rip+4]', '[ebx+esi*2]', '[bx+si]', 'fs:[rax+rcx*8+16]', '[r13]'))
        .map(([size, mem]) => size + mem),
    );
    const line = fc.record({
      bits: fc.constantFrom<16 | 32 | 64>(16, 32, 64),
      mnemonic: fc.constantFrom(...mnemonics),
      operands: fc.array(operand, { maxLength: 3 }),
    });
    fc.assert(
      fc.property(line, ({ bits, mnemonic, operands }) => {
        const r = assemble(`bits ${bits}\nlabel: ${mnemonic} ${operands.join(', ')}`, { origin: 0x1000 });
        if (!r.ok) {
          for (const e of r.errors) expect(e.message).not.toMatch(/internal/);
          return;
        }
        withDecoded(r.bytes, bits, 0x1000, (ins) => {
          const aliases: Record<string, string> = { jz: 'je', cmovz: 'cmove', setnz: 'setne' };
          expect(Mnemonic[ins.mnemonic]!.toLowerCase()).toBe(aliases[mnemonic] ?? mnemonic);
        });
      }),
      { numRuns: 1500, seed: 11 },
    );
  });

  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const r = assemble(s);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 300, seed: 3 },
    );
  });
});

describe('property: ALU and MOV register/immediate forms decode back to their operands', () => {
  const regs: Record<8 | 16 | 32 | 64, string[]> = {
    8: ['al', 'cl', 'dl', 'bl', 'sil', 'dil', 'r8b', 'r15b'],
    16: ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di', 'r9w', 'r14w'],
    32: ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'r8d', 'r13d'],
    64: ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r12', 'r15'],
  };
  const mnemonics = { add: Mnemonic.Add, sub: Mnemonic.Sub, mov: Mnemonic.Mov, cmp: Mnemonic.Cmp, xor: Mnemonic.Xor };
  const sizeArb = fc.constantFrom<8 | 16 | 32 | 64>(8, 16, 32, 64);
  const form = sizeArb.chain((size) =>
    fc.record({
      size: fc.constant(size),
      mnemonic: fc.constantFrom(...(Object.keys(mnemonics) as (keyof typeof mnemonics)[])),
      dst: fc.constantFrom(...regs[size]),
      src: fc.oneof(
        fc.constantFrom(...regs[size]).map((r) => ({ reg: r })),
        // Any value an operand of this size can hold, signed or unsigned.
        fc.bigInt(-(1n << BigInt(size - 1)), (1n << BigInt(size)) - 1n).map((v) => ({ imm: v })),
      ),
    }),
  );

  it('assembles to bytes that iced decodes to the same instruction and operands', () => {
    fc.assert(
      fc.property(form, ({ size, mnemonic, dst, src }) => {
        const text = `${mnemonic} ${dst}, ${'reg' in src ? src.reg : src.imm.toString()}`;
        const r = assemble(text);
        // 64-bit ALU instructions only have a sign-extended imm32 (SDM Vol. 2, "ADD—Add": REX.W 81 /0 id);
        // only MOV has a full imm64 (REX.W B8+rd io).
        const imm = 'imm' in src ? BigInt.asIntN(64, src.imm) : 0n;
        const encodable = size !== 64 || mnemonic === 'mov' || !('imm' in src) || (imm >= -(1n << 31n) && imm < 1n << 31n);
        expect(r.ok, text).toBe(encodable);
        if (!r.ok) return;
        withDecoded(r.bytes, 64, 0, (ins) => {
          expect(ins.mnemonic).toBe(mnemonics[mnemonic]);
          expect(ins.op0Kind).toBe(OpKind.Register);
          expect(ins.op0Register).toBe(icedRegister(dst));
          if ('reg' in src) {
            expect(ins.op1Kind).toBe(OpKind.Register);
            expect(ins.op1Register).toBe(icedRegister(src.reg));
          } else {
            // iced gives the immediate as the CPU sees it after sign extension; compare modulo 2^size.
            expect(BigInt.asUintN(size, ins.immediate(1))).toBe(BigInt.asUintN(size, src.imm));
          }
        });
      }),
      { numRuns: 500, seed: 42 },
    );
  });
});
