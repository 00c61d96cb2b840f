/* bcryptprimitives.dll for Wine 8, which lacks it: Rust's standard library takes its random
 * bytes from ProcessPrng there. This one answers from RtlGenRandom (advapi32's
 * SystemFunction036), which Wine has. Only `.ci/cross` uses it, next to opkssh.exe under Wine;
 * Windows 10 and later ship the real DLL.
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE out, SIZE_T length) {
  /* RtlGenRandom takes a ULONG length: fill larger requests in pieces. */
  const SIZE_T piece_max = 1u << 28;
  while (length > 0) {
    ULONG piece = (ULONG)(length < piece_max ? length : piece_max);
    if (!SystemFunction036(out, piece)) {
      return FALSE;
    }
    out += piece;
    length -= piece;
  }
  return TRUE;
}
