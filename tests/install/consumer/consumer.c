/* A program outside the project that uses an installed mproc. */
#include <mproc.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(mproc_errname(MPROC_ETIMEDOUT), "MPROC_ETIMEDOUT") != 0)
        return 1;
    printf("consumer: %s\n", mproc_strerror(MPROC_ECLOSED));
    return 0;
}
