/* Helpers for bench.py, compiled by it with cc so both supervisors run the same program.
 *   helper stamp FILE CODE   append "S <ns>" at start and "E <ns>" just before exiting with
 *                            CODE (CLOCK_MONOTONIC): the restart gap is S(n+1) - E(n).
 *   helper spawnref N        fork+exec+wait /bin/true N times; prints the seconds taken.      */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "stamp") == 0) {
        FILE *f = fopen(argv[2], "a");
        if (!f) return 99;
        fprintf(f, "S %lld\n", now_ns());
        fflush(f);
        fprintf(f, "E %lld\n", now_ns());
        fclose(f);
        return atoi(argv[3]);
    }
    if (argc == 3 && strcmp(argv[1], "spawnref") == 0) {
        int n = atoi(argv[2]);
        long long t0 = now_ns();
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                execl("/bin/true", "true", (char *)NULL);
                _exit(127);
            }
            int st;
            waitpid(pid, &st, 0);
        }
        printf("%.6f\n", (now_ns() - t0) / 1e9);
        return 0;
    }
    fprintf(stderr, "usage: helper stamp FILE CODE | helper spawnref N\n");
    return 2;
}
