# Sourced by debian/build-deb and rpm/build-rpm (bash, from the repository's root): finds or
# builds the opkssh binary to package, then stages it with what both packages ship beside it:
# manual pages and shell completions generated from it, and the SELinux policy module compiled
# from install/selinux/opkssh.te (checkmodule from checkpolicy, semodule_package from
# semodule-utils on Debian; policycoreutils-devel or checkpolicy on RHEL/Fedora).
#
# Reads:  package_profile  dev (the debug binary, built before) or release (built here)
#         package_target   a Rust target triple (x86_64- or aarch64-unknown-linux-gnu), or empty
#                          for this machine's
#         package_binary   an opkssh built elsewhere, or empty: its architecture is read from it
# Sets:   package_triple   the target triple the package is for
#         package_arch     x86_64 or aarch64 (rpm's name; Debian's amd64 and arm64)
#         package_stage_root, package_stage
#                          $CARGO_TARGET_DIR/package and its <triple>/release folder, laid out
#                          as cargo lays out a target folder (what cargo deb reads as
#                          target/release/ with --target): opkssh, man/*.1.gz,
#                          completions/{opkssh,_opkssh,opkssh.fish}, selinux/opkssh.pp
#
# A binary for another architecture than this machine's is run under qemu-user
# (qemu-aarch64 -L /usr/aarch64-linux-gnu) to generate the manual pages and completions.

package_die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

# The architecture an ELF file is built for, from its header's e_machine field.
package_elf_arch() {
  [ "$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' \n')" = 7f454c46 ] ||
    package_die "$1 is not an ELF executable"
  case $(od -An -tx1 -j18 -N2 "$1" | tr -d ' \n') in
    3e00) echo x86_64 ;;
    b700) echo aarch64 ;;
    *) package_die "$1 is built for neither x86_64 nor aarch64" ;;
  esac
}

package_stage_binary() {
  local target_root=${CARGO_TARGET_DIR:-target} profile_dir binary arch
  case $package_profile in
    dev) profile_dir=debug ;;
    release) profile_dir=release ;;
    *) package_die "unknown profile $package_profile" ;;
  esac
  if [ -n "$package_binary" ]; then
    [ -f "$package_binary" ] || package_die "$package_binary is missing"
    binary=$package_binary
    arch=$(package_elf_arch "$binary")
    package_triple=${package_target:-$arch-unknown-linux-gnu}
  else
    package_triple=${package_target:-$(uname -m)-unknown-linux-gnu}
    local dir=$target_root/${package_target:+$package_target/}$profile_dir
    if [ "$package_profile" = release ]; then
      cargo build --release --locked -p opkssh-cli ${package_target:+--target "$package_target"}
    fi
    binary=$dir/opkssh
    [ -x "$binary" ] || package_die "$binary is missing; build it first"
    arch=$(package_elf_arch "$binary")
  fi
  case $package_triple in
    "$arch"-*-linux-*) ;;
    *) package_die "$binary is an $arch binary, not one for $package_triple" ;;
  esac
  package_arch=$arch

  for tool in checkmodule semodule_package; do
    command -v "$tool" >/dev/null ||
      package_die "$tool is missing: apt-get install checkpolicy semodule-utils"
  done
  mkdir -p "$target_root/package"
  package_stage_root=$(cd "$target_root/package" && pwd)
  package_stage=$package_stage_root/$package_triple/release
  rm -rf "$package_stage"
  mkdir -p "$package_stage/completions" "$package_stage/selinux"
  # A hard link, not a copy: the debug binary is 50-100 MB.
  ln -f "$binary" "$package_stage/opkssh" 2>/dev/null || cp "$binary" "$package_stage/opkssh"

  local run=("$package_stage/opkssh") qemu
  if ! "${run[@]}" --version >/dev/null 2>&1; then
    qemu=$(command -v "qemu-$arch" || command -v "qemu-$arch-static") ||
      package_die "cannot run the $arch binary here to make its manual pages and completions: apt-get install qemu-user"
    [ -d "/usr/$arch-linux-gnu" ] ||
      package_die "/usr/$arch-linux-gnu is missing (the $arch C library for qemu): apt-get install libc6-dev-arm64-cross"
    run=("$qemu" -L "/usr/$arch-linux-gnu" "$package_stage/opkssh")
    "${run[@]}" --version >/dev/null || package_die "$binary does not run under $qemu"
  fi
  "${run[@]}" man --out-dir "$package_stage/man" >/dev/null
  gzip -9n "$package_stage"/man/*.1
  "${run[@]}" completions bash >"$package_stage/completions/opkssh"
  "${run[@]}" completions zsh >"$package_stage/completions/_opkssh"
  "${run[@]}" completions fish >"$package_stage/completions/opkssh.fish"
  # semodule names a module after its file: both files are called opkssh.*.
  checkmodule -M -m -o "$package_stage/selinux/opkssh.mod" install/selinux/opkssh.te >/dev/null
  semodule_package -o "$package_stage/selinux/opkssh.pp" -m "$package_stage/selinux/opkssh.mod"
}
