/* Fixture: the public header, found through the include/ directory. */
#pragma once
#include <stddef.h>
void *hak_malloc(size_t n);
