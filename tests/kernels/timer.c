/*
 * Timer interrupts, the two ways a PC kernel gets them: the 8254 PIT's IRQ 0 through the remapped 8259 PICs (vector
 * 20H, EOI to the master), then through the I/O APIC (input 2 by the MADT's override, vector 30H, EOI to the local
 * APIC) with the PICs masked. In between, the TSC is calibrated against PIT channel 2, as Linux's
 * pit_calibrate_tsc does: gate on through port 61H, mode 0, poll OUT2.
 */
#include "lib.h"

struct idt_gate { u16 offset_lo, selector; u8 zero, type_attr; u16 offset_hi; } __attribute__((packed));
static struct idt_gate idt[256] __attribute__((aligned(8)));
volatile u32 pic_ticks, ioapic_ticks;

void pic_irq0_stub(void);
void ioapic_stub(void);
__asm__(
  ".text\n"
  ".globl pic_irq0_stub\n"
  "pic_irq0_stub:\n"
  "  pushl %eax\n"
  "  incl pic_ticks\n"
  "  movb $0x20, %al\n"
  "  outb %al, $0x20\n"          /* non-specific EOI to the master PIC */
  "  popl %eax\n"
  "  iret\n"
  ".globl ioapic_stub\n"
  "ioapic_stub:\n"
  "  incl ioapic_ticks\n"
  "  movl $0, 0xfee000b0\n"      /* local APIC EOI */
  "  iret\n");

static void set_gate(int vector, void (*handler)(void)) {
  u16 cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  u32 a = (u32)handler;
  idt[vector] = (struct idt_gate){ (u16)a, cs, 0, 0x8e, (u16)(a >> 16) }; /* present, DPL 0, 32-bit interrupt gate */
}

static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }

static void ioapic_write(u32 reg, u32 v) { *(volatile u32 *)0xfec00000 = reg; *(volatile u32 *)0xfec00010 = v; }

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  serial_init();
  set_gate(0x20, pic_irq0_stub);
  set_gate(0x30, ioapic_stub);
  struct { u16 limit; u32 base; } __attribute__((packed)) idtr = { sizeof idt - 1, (u32)idt };
  __asm__ volatile("lidt %0" : : "m"(idtr));

  /* Remap the PICs to 20H/28H, unmask only IRQ 0; the PIT at 1000 Hz (mode 2, count 1193). */
  outb(0x20, 0x11); outb(0xa0, 0x11);
  outb(0x21, 0x20); outb(0xa1, 0x28);
  outb(0x21, 0x04); outb(0xa1, 0x02);
  outb(0x21, 0x01); outb(0xa1, 0x01);
  outb(0x21, 0xfe); outb(0xa1, 0xff);
  outb(0x43, 0x34); outb(0x40, 1193 & 0xff); outb(0x40, 1193 >> 8);
  __asm__ volatile("sti");
  while (pic_ticks < 10) __asm__ volatile("hlt");
  __asm__ volatile("cli");
  puts("PIC: "); put_dec(pic_ticks); puts(" timer interrupts\n");

  /* TSC against PIT channel 2: 11932 ticks = 10 ms. */
  outb(0x61, (u8)((inb(0x61) & ~0x02) | 0x01));
  outb(0x43, 0xb0);
  outb(0x42, 11932 & 0xff); outb(0x42, 11932 >> 8);
  u64 t0 = rdtsc();
  u32 polls = 0;
  while ((inb(0x61) & 0x20) == 0) polls++;
  u64 t1 = rdtsc();
  puts("TSC: "); put_dec((u32)(t1 - t0) / 10000); puts(" MHz ("); puts(polls > 1000 ? "many" : "few"); puts(" polls)\n");

  /* The same timer through the I/O APIC: mask the PICs, route input 2 to vector 30H on APIC 0. */
  outb(0x21, 0xff);
  ioapic_write(0x10 + 2 * 2 + 1, 0);
  ioapic_write(0x10 + 2 * 2, 0x30);
  __asm__ volatile("sti");
  while (ioapic_ticks < 5) __asm__ volatile("hlt");
  __asm__ volatile("cli");
  puts("I/O APIC: "); put_dec(ioapic_ticks); puts(" timer interrupts\n");
  return 0;
}
