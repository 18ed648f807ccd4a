/* A 64-bit kernel (entry64.S takes it from the multiboot entry to long mode): 64-bit arithmetic the 32-bit kernels
 * cannot do in one instruction, then CPUID's view of the mode. */
#include "lib.h"

typedef unsigned long uptr;

int kmain(u32 magic, u32 *info) {
  serial_init();
  puts("long mode: magic "); put_hex(magic); puts(", info at "); put_hex((u32)(uptr)info); putc('\n');
  u64 x = 0x0123456789abcdefull;
  u64 y = (x >> 12) ^ (x << 7) ^ (x * 0x9e3779b97f4a7c15ull);
  u64 q = y / 1000003u, r = y % 1000003u;
  puts("u64 "); put_hex64(y); puts(" / 1000003 = "); put_hex64(q); puts(" rem "); put_dec((u32)r); putc('\n');
  u32 efer_lo, efer_hi;
  __asm__ volatile("rdmsr" : "=a"(efer_lo), "=d"(efer_hi) : "c"(0xc0000080));
  puts("EFER "); put_hex(efer_lo); puts(sizeof(void *) == 8 ? ", 8-byte pointers\n" : ", 4-byte pointers\n");
  return (efer_lo & 0x400) ? 0 : 1; /* LMA */
}
