/*
 * The legacy PC pieces a kernel probes early: the CMOS RTC (date and time in BCD, then in binary), the memory sizes
 * and CPU count the BIOS leaves in CMOS RAM, and a PCI bus scan through configuration mechanism #1.
 */
#include "lib.h"

static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static u8 cmos(u8 reg) { outb(0x70, 0x80 | reg); return inb(0x71); } /* NMI stays disabled while we look */
static u32 bcd(u8 v) { return (v >> 4) * 10 + (v & 15); }

static void put2(u32 v) { putc((char)('0' + v / 10)); putc((char)('0' + v % 10)); }

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  serial_init();
  while (cmos(0x0a) & 0x80) { } /* wait while an update is in progress */
  u8 b = cmos(0x0b);
  puts("rtc "); put2(bcd(cmos(0x32))); put2(bcd(cmos(0x09))); putc('-'); put2(bcd(cmos(0x08))); putc('-'); put2(bcd(cmos(0x07)));
  putc(' '); put2(bcd(cmos(0x04))); putc(':'); put2(bcd(cmos(0x02))); putc(':'); put2(bcd(cmos(0x00)));
  puts(" weekday "); put_dec(cmos(0x06)); puts(" status B "); put_hex(b); putc('\n');
  outb(0x70, 0x0b); outb(0x71, (u8)(b | 0x04)); /* binary mode */
  puts("rtc binary month "); put_dec(cmos(0x08)); puts(" year "); put_dec(cmos(0x09)); putc('\n');
  puts("cmos base "); put_dec(cmos(0x15) | (cmos(0x16) << 8)); puts(" KiB, extended "); put_dec(cmos(0x17) | (cmos(0x18) << 8));
  puts(" KiB, above 16 MiB "); put_dec(cmos(0x34) | (cmos(0x35) << 8)); puts(" x 64 KiB, cpus "); put_dec(cmos(0x5f) + 1u); putc('\n');
  u32 found = 0;
  for (u32 dev = 0; dev < 32; dev++) {
    outl(0xcf8, 0x80000000u | (dev << 11));
    if ((inl(0xcfc) & 0xffff) != 0xffff) found++;
  }
  puts("pci bus 0: "); put_dec(found); puts(" devices, CONFIG_ADDRESS reads back "); put_hex(inl(0xcf8)); putc('\n');
  return (int)found;
}
