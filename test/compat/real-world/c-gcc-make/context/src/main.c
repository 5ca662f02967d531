#include <stdio.h>
#include <string.h>
#include "count.h"

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("wc-lite 0.3 (gcc %d.%d)\n", __GNUC__, __GNUC_MINOR__);
    return 0;
  }
  struct counts c = count_stream(stdin);
  printf("lines=%lu words=%lu bytes=%lu\n", c.lines, c.words, c.bytes);
  return 0;
}
