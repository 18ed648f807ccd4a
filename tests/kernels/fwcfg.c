/* Probes QEMU's fw_cfg (selector 510H, data 511H): signature, interface ID, CPU count, RAM size. Reports on E9H. */
#include "lib.h"

#define FW_CFG_SEL 0x510
#define FW_CFG_DATA 0x511

static void fw_select(u16 key) { outw(FW_CFG_SEL, key); }
static u32 fw_read(int bytes) {
  u32 v = 0;
  for (int i = 0; i < bytes; i++) v |= (u32)inb(FW_CFG_DATA) << (8 * i);
  return v;
}

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  char sig[5];
  fw_select(0x0000);
  for (int i = 0; i < 4; i++) sig[i] = (char)inb(FW_CFG_DATA);
  sig[4] = 0;
  e9_puts("fw_cfg signature '"); e9_puts(sig); e9_puts("'\n");
  if (strcmp(sig, "QEMU") != 0) return 2;
  serial_init();
  fw_select(0x0001);
  puts("fw_cfg id "); put_dec(fw_read(4)); putc('\n');
  fw_select(0x0005);
  u32 cpus = fw_read(2);
  puts("fw_cfg cpus "); put_dec(cpus); putc('\n');
  fw_select(0x0003);
  u32 lo = fw_read(4), hi = fw_read(4);
  puts("fw_cfg ram "); put_dec((lo >> 20) | (hi << 12)); puts(" MiB\n");
  return (int)cpus;
}
