# Sets the server up around the packaged /usr/bin/opkssh, as the Debian package's postinst
# does: account, /etc/opk owners and modes, log and cache, sshd's AuthorizedKeysCommand (checked
# with sshd -t, then sshd reloaded), the sudoers rule if sudo is installed, and where SELinux is
# enabled the packaged policy module. On an upgrade ($1 > 1) it only fixes what drifted.
/usr/bin/opkssh install-server --from-package
