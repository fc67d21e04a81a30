#include "hakmem.h"
void *malloc(size_t n) { return hak_malloc(n); }
