/* The airlock example: built inside the sandbox by the image's gcc. */
#include <stdio.h>

int main(void) {
    printf("Hello from a hermetic airlock build!\n");
    return 0;
}
