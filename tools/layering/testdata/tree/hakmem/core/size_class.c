#include "size_class.h"
int hak_size_class_of(size_t n) { return (int)(n / 16); }
