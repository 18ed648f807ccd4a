// The three hexadecimal notations, and the rule that lets every layer use them: src/util imports nothing.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hex, hexDigits, hexLower, intelHex } from './hex.ts';

describe('hex', () => {
  it('0x with uppercase digits, padded on request', () => {
    expect(hex(0x1f)).toBe('0x1F');
    expect(hex(0xffff800000001000n)).toBe('0xFFFF800000001000');
    expect(hex(0x681e, 4)).toBe('0x681E');
    expect(hex(6n, 16)).toBe('0x0000000000000006');
  });
  it("Intel's H suffix, the sign kept for negative numbers", () => {
    expect(intelHex(0x3a)).toBe('3AH');
    expect(intelHex(0xc0000080)).toBe('C0000080H');
    expect(intelHex(-0x10)).toBe('-10H');
  });
  it('lowercase, as gdb and printk print', () => {
    expect(hexLower(0x8005n)).toBe('0x8005');
    expect(hexLower(0xabn, 4)).toBe('0x00ab');
  });
  it('bare digits for byte dumps', () => {
    expect(hexDigits(0xf, 2)).toBe('0F');
  });
  it('src/util imports nothing, so every layer may import it', () => {
    const dir = dirname(fileURLToPath(import.meta.url));
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts') && !n.endsWith('.test.ts'))) {
      expect(readFileSync(join(dir, f), 'utf8'), f).not.toMatch(/^\s*(import|export .* from)\b/m);
    }
  });
});
