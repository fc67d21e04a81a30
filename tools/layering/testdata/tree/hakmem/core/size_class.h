#pragma once
#include "types.h"
int hak_size_class_of(size_t n);
hak_block *hak_size_class_batch(int cls);
