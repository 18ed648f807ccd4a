/*
 * SMP bring-up: the BSP learns the CPU count from fw_cfg, copies the AP trampoline to 8000H and sends INIT, SIPI,
 * SIPI to all other processors through its local APIC. Each AP reaches ap_main in protected mode and checks in
 * under a spinlock. The BSP waits for all of them and exits with the number of APs that came up.
 * See SDM Vol. 3A, "MP Initialization Protocol Algorithm for MP Systems".
 */
#include "lib.h"

#define LAPIC 0xfee00000u
#define LAPIC_ID 0x20
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define ICR_ALL_EXCLUDING_SELF (3u << 18)
#define ICR_LEVEL_ASSERT (1u << 14)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)
#define ICR_BUSY (1u << 12)
#define TRAMPOLINE 0x8000u

extern const u8 ap_trampoline[], ap_trampoline_end[];

static volatile u32 lock;
static volatile u32 aps_up;

static inline u32 lapic_read(u32 reg) { return *(volatile u32 *)(LAPIC + reg); }
static inline void lapic_write(u32 reg, u32 v) { *(volatile u32 *)(LAPIC + reg) = v; }

static void spin_lock(void) { while (__sync_lock_test_and_set(&lock, 1)) __asm__ volatile("pause"); }
static void spin_unlock(void) { __sync_lock_release(&lock); }

static void send_ipi(u32 icr) {
  lapic_write(LAPIC_ICR_HIGH, 0);
  lapic_write(LAPIC_ICR_LOW, icr);
  while (lapic_read(LAPIC_ICR_LOW) & ICR_BUSY) __asm__ volatile("pause");
}

static u32 fw_cfg_cpus(void) {
  outw(0x510, 0x0005);
  return inb(0x511) | ((u32)inb(0x511) << 8);
}

void ap_main(u32 index) {
  spin_lock();
  puts("AP "); put_dec(index); puts(" up, APIC ID "); put_dec(lapic_read(LAPIC_ID) >> 24); putc('\n');
  spin_unlock();
  __sync_fetch_and_add(&aps_up, 1);
}

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  serial_init();
  u32 cpus = fw_cfg_cpus();
  puts("BSP: APIC ID "); put_dec(lapic_read(LAPIC_ID) >> 24); puts(", "); put_dec(cpus); puts(" CPUs\n");
  const u8 *s = ap_trampoline;
  for (u8 *d = (u8 *)TRAMPOLINE; s < ap_trampoline_end; ) *d++ = *s++;
  lapic_write(LAPIC_SVR, 0x1ff); /* software-enable the APIC, spurious vector FFH */
  send_ipi(ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | ICR_INIT);
  for (int i = 0; i < 2; i++) send_ipi(ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | ICR_STARTUP | (TRAMPOLINE >> 12));
  for (u32 spins = 0; aps_up < cpus - 1 && spins < 1000000; spins++) __asm__ volatile("pause");
  spin_lock();
  puts("BSP: "); put_dec(aps_up); puts(" APs up\n");
  spin_unlock();
  return (int)aps_up;
}
