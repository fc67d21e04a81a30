#pragma once
#include "types.h"
int hak_size_class(size_t n);
