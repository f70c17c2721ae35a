#!/usr/bin/env bash
# Builds Peapod's offline test images from this Debian machine's packages, as `docker save` archives:
#   OUTDIR/busybox-1.35.tar  busybox:1.35  one layer: busybox-static with every applet linked, /etc/passwd, /tmp …
#   OUTDIR/nginx-1.21.tar    nginx:1.21    two layers: the busybox layer, then Debian's nginx-light with the libraries
#                                         ldd lists; `nginx -g 'daemon off;'` serves a page on port 80 and logs to
#                                         /var/log/nginx/access.log and error.log as plain files.
# Needs: busybox-static, nginx-light, tar, python3 (scripts/deps.sh installs them). Writes only inside OUTDIR.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
for f in /bin/busybox /usr/sbin/nginx; do
  [ -x "$f" ] || { echo "build.sh: $f missing (apt-get install busybox-static nginx-light)" >&2; exit 1; }
done
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
  amd64|x86_64) arch=amd64 ;; arm64|aarch64) arch=arm64 ;; *) arch=$(dpkg --print-architecture) ;;
esac

layer_tar() { # layer_tar DIR OUT.tar: reproducible, numeric root ownership, relative names
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1640995200 --format=posix \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf "$2" .
}

# --- layer 1: busybox ---------------------------------------------------------------------------------------------
bb="$work/busybox"
mkdir -p "$bb"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,var/spool/mail,var/www,proc,sys,dev,tmp}
chmod 1777 "$bb/tmp"; chmod 700 "$bb/root"
cp /bin/busybox "$bb/bin/busybox"
/bin/busybox --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  depth=$(awk -F/ '{print NF-1}' <<<"$applet")
  rel=$(printf '../%.0s' $(seq 1 "$depth"))bin/busybox
  ln -sf "$rel" "$bb/$applet"
done
cat >"$bb/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
P
cat >"$bb/etc/group" <<'G'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
G
echo 'root:*::0:::::' >"$bb/etc/shadow"; chmod 600 "$bb/etc/shadow"
layer_tar "$bb" "$work/l1.tar"

# --- layer 2: nginx -----------------------------------------------------------------------------------------------
ng="$work/nginx"
mkdir -p "$ng"/{usr/sbin,etc/nginx/conf.d,usr/share/nginx/html,var/log/nginx,var/cache/nginx,run,var/lock}
mkdir -p "$ng"/var/lib/nginx/{body,fastcgi,proxy,scgi,uwsgi}
cp /usr/sbin/nginx "$ng/usr/sbin/nginx"
ldd /usr/sbin/nginx | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u | while read -r lib; do
  mkdir -p "$ng$(dirname "$lib")"
  cp -L "$lib" "$ng$lib"
done
cp /etc/nginx/mime.types "$ng/etc/nginx/mime.types"
cp "$bb/etc/passwd" "$ng/etc/passwd"; echo 'nginx:x:101:101:nginx:/nonexistent:/bin/false' >>"$ng/etc/passwd"
cp "$bb/etc/group" "$ng/etc/group"; echo 'nginx:x:101:' >>"$ng/etc/group"
cat >"$ng/etc/nginx/nginx.conf" <<'C'
user  nginx;
worker_processes  1;
error_log  /var/log/nginx/error.log notice;
pid        /run/nginx.pid;
events {
    worker_connections  1024;
}
http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;
    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';
    access_log  /var/log/nginx/access.log  main;
    sendfile        on;
    keepalive_timeout  65;
    include /etc/nginx/conf.d/*.conf;
}
C
cat >"$ng/etc/nginx/conf.d/default.conf" <<'C'
server {
    listen       80;
    listen  [::]:80;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
C
cat >"$ng/usr/share/nginx/html/index.html" <<'H'
<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
</body>
</html>
H
cp "$ng/usr/share/nginx/html/index.html" "$ng/usr/share/nginx/html/50x.html"
: >"$ng/var/log/nginx/access.log"; : >"$ng/var/log/nginx/error.log"
layer_tar "$ng" "$work/l2.tar"

# --- archives -----------------------------------------------------------------------------------------------------
python3 - "$work" "$out" "$arch" <<'PY'
import hashlib, io, json, os, sys, tarfile
work, out, arch = sys.argv[1:4]
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
created = "2022-01-01T00:00:00Z"
path_env = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
def save(name, tag, layers, cfg, history):
    diff = [sha(os.path.join(work, l)) for l in layers]
    config = {"architecture": arch, "os": "linux", "created": created, "config": cfg,
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff]}, "history": history}
    cbytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    cid = hashlib.sha256(cbytes).hexdigest()
    repo, t = tag.rsplit(":", 1)
    manifest = [{"Config": cid + ".json", "RepoTags": [tag], "Layers": [d + "/layer.tar" for d in diff]}]
    tmp = os.path.join(out, name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tf:
        def add_bytes(n, b):
            ti = tarfile.TarInfo(n); ti.size = len(b); ti.mtime = 1640995200; ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(b))
        for d, l in zip(diff, layers):
            ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1640995200
            tf.addfile(ti)
            add_bytes(d + "/VERSION", b"1.0")
            ti = tf.gettarinfo(os.path.join(work, l), arcname=d + "/layer.tar")
            ti.uid = ti.gid = 0; ti.uname = ti.gname = ""; ti.mtime = 1640995200
            with open(os.path.join(work, l), "rb") as f:
                tf.addfile(ti, f)
        add_bytes(cid + ".json", cbytes)
        add_bytes("manifest.json", json.dumps(manifest).encode())
        add_bytes("repositories", json.dumps({repo: {t: diff[-1]}}).encode())
    os.replace(tmp, os.path.join(out, name))
    print(f"{name}: {tag} sha256:{cid} ({os.path.getsize(os.path.join(out, name))} bytes)")
bb_hist = [{"created": created, "created_by": "busybox-static from Debian (tests/images/build.sh)"}]
save("busybox-1.35.tar", "busybox:1.35", ["l1.tar"], {"Cmd": ["sh"], "Env": [path_env]}, bb_hist)
save("nginx-1.21.tar", "nginx:1.21", ["l1.tar", "l2.tar"],
     {"Cmd": ["nginx", "-g", "daemon off;"], "Env": [path_env], "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"},
     bb_hist + [{"created": created, "created_by": "nginx-light from Debian with the libraries ldd lists (tests/images/build.sh)"}])
PY
