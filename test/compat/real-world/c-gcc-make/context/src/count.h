#ifndef COUNT_H
#define COUNT_H
#include <stdio.h>

struct counts {
  unsigned long lines, words, bytes;
};

struct counts count_stream(FILE *f);
#endif
