/* A stand-in for whoami.exe under Wine, whose own prints only the user's name: this one answers
 * `whoami /user /fo csv /nh` as Windows does, with a SID, so that opkssh's ACL steps run.
 * tests/tests/foreign.rs puts it in the throwaway prefix's system32 and selects it for its own
 * commands only (WINEDLLOVERRIDES=whoami.exe=n); Windows has the real one.
 * Build: x86_64-w64-mingw32-gcc -O2 -o whoami.exe whoami-standin.c */
#include <stdio.h>

int main(void) {
  fputs("\"vm\\root\",\"S-1-5-21-1-2-3-1001\"\r\n", stdout);
  return 0;
}
