#include "data/image.h"
#include <stdlib.h>

int image_alloc(Image *im, int w, int h, int c) {
    im->px = NULL;
    im->w = w; im->h = h; im->c = c;
    if (w <= 0 || h <= 0 || (c != 1 && c != 3) || (size_t)w * h > (size_t)1 << 28) return -1;
    im->px = malloc((size_t)w * h * c);
    return im->px ? 0 : -1;
}

void image_free(Image *im) {
    free(im->px);
    im->px = NULL;
}
