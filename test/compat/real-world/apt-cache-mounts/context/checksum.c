/* fletcher16: prints the Fletcher-16 checksum of stdin. */
#include <stdint.h>
#include <stdio.h>

int main(void) {
  uint16_t a = 0, b = 0;
  int c;
  while ((c = getchar()) != EOF) {
    a = (uint16_t)((a + (uint8_t)c) % 255);
    b = (uint16_t)((b + a) % 255);
  }
  printf("fletcher16=%04x\n", (unsigned)((b << 8) | a));
  return 0;
}
