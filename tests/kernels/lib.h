/* What the test kernels share: port I/O, COM1 output (polling LSR.THRE), the E9H console, number printing. */
#ifndef LIB_H
#define LIB_H
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

void serial_init(void);
void putc(char c);
void puts(const char *s);
void put_hex(u32 v);
void put_hex64(u64 v);
void put_dec(u32 v);
void e9_puts(const char *s);
int strcmp(const char *a, const char *b);
#endif
