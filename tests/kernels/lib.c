#include "lib.h"

#define COM1 0x3f8
#define LSR_THRE 0x20

/* 115200 8N1, FIFOs on: what a real driver does first (the emulated UART records it). */
void serial_init(void) {
  outb(COM1 + 1, 0x00);   /* IER: no interrupts */
  outb(COM1 + 3, 0x80);   /* LCR: DLAB */
  outb(COM1 + 0, 0x01);   /* divisor 1 */
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x03);   /* 8N1 */
  outb(COM1 + 2, 0xc7);   /* FIFO on, clear */
}

void putc(char c) {
  while ((inb(COM1 + 5) & LSR_THRE) == 0) { }
  outb(COM1, (u8)c);
}

void puts(const char *s) {
  while (*s) putc(*s++);
}

void put_hex(u32 v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 28; i >= 0; i -= 4) putc(digits[(v >> i) & 0xf]);
}

void put_hex64(u64 v) {
  put_hex((u32)(v >> 32));
  put_hex((u32)v);
}

void put_dec(u32 v) {
  char buf[11];
  int n = 0;
  do { buf[n++] = (char)('0' + v % 10); v /= 10; } while (v != 0);
  while (n > 0) putc(buf[--n]);
}

void e9_puts(const char *s) {
  while (*s) outb(0xe9, (u8)*s++);
}

int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) { a++; b++; }
  return (u8)*a - (u8)*b;
}
