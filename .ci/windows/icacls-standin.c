/* A stand-in for icacls.exe under Wine, whose own is a stub that changes and saves nothing. It
 * logs each call's arguments, as the program received them after Windows' command-line
 * quoting, one call per line, tab-separated, to the file named by OPKSSH_ACL_STANDIN_LOG, and:
 * - `icacls <file> /save <acl file> ...` writes <acl file> as icacls does, in UTF-16LE: the
 *   file's name, then the DACL given in OPKSSH_ACL_STANDIN_DACL (SDDL);
 * - anything else changes nothing and succeeds.
 * So a test decides what opkssh reads back, and sees what opkssh asked. tests/tests/foreign.rs
 * puts it in the throwaway prefix's system32 and selects it for its own commands only
 * (WINEDLLOVERRIDES=icacls.exe=n); Windows has the real one.
 * Build: x86_64-w64-mingw32-gcc -O2 -o icacls.exe icacls-standin.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_utf16(FILE *out, const char *text) {
  for (; *text; text++) {
    fputc((unsigned char)*text, out);
    fputc(0, out);
  }
}

int main(int argc, char **argv) {
  const char *log = getenv("OPKSSH_ACL_STANDIN_LOG");
  if (log) {
    FILE *out = fopen(log, "ab");
    if (!out) return 2;
    for (int i = 1; i < argc; i++) {
      fputs(argv[i], out);
      fputc(i + 1 < argc ? '\t' : '\n', out);
    }
    fclose(out);
  }
  if (argc >= 4 && strcmp(argv[2], "/save") == 0) {
    const char *dacl = getenv("OPKSSH_ACL_STANDIN_DACL");
    FILE *out = fopen(argv[3], "wb");
    if (!dacl || !out) return 3;
    const char *name = strrchr(argv[1], '\\');
    put_utf16(out, name ? name + 1 : argv[1]);
    put_utf16(out, "\r\n");
    put_utf16(out, dacl);
    put_utf16(out, "\r\n");
    fclose(out);
  }
  return 0;
}
