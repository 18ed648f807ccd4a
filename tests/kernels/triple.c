/* Faults with no usable IDT (the loader leaves its limit 0): #UD, then #GP, #DF, and the processor shuts down. */
#include "lib.h"

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  serial_init();
  puts("about to triple-fault\n");
  struct { u16 limit; u32 base; } __attribute__((packed)) idtr = { 0, 0 };
  __asm__ volatile("lidt %0" : : "m"(idtr));
  __asm__ volatile("ud2");
  puts("still running?\n");
  return 1;
}
