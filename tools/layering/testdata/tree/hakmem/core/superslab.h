#pragma once
#include "types.h"
void *hak_superslab_new(void);
