#!/bin/sh
# The guest agent's guest-shutdown runs "shutdown -h|-r|-P +0 <msg>"; there is no systemd
# here, so hand it to busybox init.
case " $* " in
  *" -r "*) exec /bin/busybox reboot ;;
  *) exec /bin/busybox poweroff ;;
esac
