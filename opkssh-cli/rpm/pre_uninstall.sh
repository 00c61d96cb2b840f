# Takes opkssh out of sshd's configuration (and the sudoers rule, key cache and SELinux
# module) while the binary is still there. Only on erase ($1 = 0): an upgrade ($1 = 1) keeps
# the server set up. Modified files in /etc/opk are kept as .rpmsave by rpm.
if [ "$1" -eq 0 ]; then
    /usr/bin/opkssh uninstall-server --from-package
fi
