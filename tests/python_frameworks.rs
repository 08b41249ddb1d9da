//! Real frameworks from PyPI in a virtualenv (scripts/test.sh makes target/pyvenv with
//! Flask and Django): each served over http-socket and through nginx's uwsgi_pass, with
//! `virtualenv` pointing at the venv (seed-python.md A01, A26).

mod python_support;
use python_support::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The venv with Flask and Django: `$IMPERIUM_PYVENV`, else target/pyvenv.
fn venv() -> PathBuf {
    let p = std::env::var_os("IMPERIUM_PYVENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyvenv"));
    let ok = Command::new(p.join("bin/python"))
        .args(["-c", "import flask, django"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "no venv with Flask and Django at {} (scripts/test.sh creates it)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx on a loopback port passing everything to a uwsgi socket; killed on drop.
struct Nginx {
    child: std::process::Child,
    port: u16,
}

impl Nginx {
    fn start(s: &Scratch, uwsgi_port: u16) -> Nginx {
        let port = free_port();
        let dir = s.path("nginx");
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      include /etc/nginx/uwsgi_params;\n      uwsgi_pass 127.0.0.1:{uwsgi_port};\n    }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .args(["-c", &path.to_string_lossy(), "-p", &d.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (scripts/test.sh installs it)");
        wait_until("nginx listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Nginx { child, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn flask_in_a_venv_over_http_socket_and_nginx() {
    let venv = venv();
    let s = Scratch::new("py-flask");
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--virtualenv",
            &venv.to_string_lossy(),
            "--chdir",
            &apps_dir().to_string_lossy(),
            "--module",
            "flaskapp:app",
        ],
    );
    let (h, u) = (i.port(0), i.port(1));
    i.wait_ready(2);
    let log = i.stderr();
    assert!(
        log.contains(&format!("PEP 405 virtualenv detected: {}", venv.display())),
        "{log}"
    );
    assert!(
        log.contains("WSGI app 0 (mountpoint='') ready in") && log.contains("(default app)"),
        "{log}"
    );
    let nginx = Nginx::start(&s, u);
    for port in [h, nginx.port] {
        let r = get(port, "/");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello from Flask"),
            "{r:?}"
        );
        let r = http(port, "POST", "/form", b"name=imperium");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "name=imperium"),
            "{r:?}"
        );
        let r = get(port, "/static/site.css");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "body { color: teal; }\n"),
            "{r:?}"
        );
        let j = get(port, "/where").json();
        assert_eq!(j["prefix"].as_str().map(PathBuf::from), Some(venv.clone()));
        assert!(
            j["flask_file"]
                .as_str()
                .unwrap()
                .starts_with(&*venv.to_string_lossy())
        );
    }
    assert_no_python_errors(&i);
}

#[test]
fn django_project_over_http_socket_and_nginx() {
    let venv = venv();
    let s = Scratch::new("py-django");
    let project = s.path("project");
    let ok = Command::new(venv.join("bin/python"))
        .args([
            &app("django_setup.py"),
            &project.to_string_lossy().into_owned(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--socket",
            "127.0.0.1:0",
            "--master",
            "--processes",
            "2",
            "--threads",
            "2",
            "--home",
            &venv.to_string_lossy(),
            "--chdir",
            &project.to_string_lossy(),
            "--env",
            "DJANGO_SETTINGS_MODULE=mysite.settings",
            "--module",
            "mysite.wsgi:application",
        ],
    );
    let (h, u) = (i.port(0), i.port(1));
    i.wait_ready(2);
    let nginx = Nginx::start(&s, u);
    for port in [h, nginx.port] {
        let r = get(port, "/form/");
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.text().contains("<form method=\"post\">"));
        let r = http(port, "POST", "/form/", b"name=vassal");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "posted vassal"),
            "{r:?}"
        );
        let r = get(port, "/static/hello.txt");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "static hello from django\n"),
            "{r:?}"
        );
        assert_eq!(get(port, "/nope/").status, 404);
    }
    // Django's static file went out through wsgi.file_wrapper (a FileResponse).
    assert_no_python_errors(&i);
}

#[test]
fn paste_deploy_app() {
    let venv = venv();
    let s = Scratch::new("py-paste");
    std::fs::write(s.path("pasteapp.py"), "def make_app(global_conf, **local):\n    def app(e, sr):\n        sr('200 OK', [('Content-Type', 'text/plain')])\n        return [('paste says ' + local.get('greeting', '?')).encode()]\n    return app\n").unwrap();
    std::fs::write(
        s.path("app.ini"),
        "[app:main]\npaste.app_factory = pasteapp:make_app\ngreeting = hello\n",
    )
    .unwrap();
    let i = start(
        &s,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--virtualenv",
            &venv.to_string_lossy(),
            "--paste",
            &format!("config:{}", s.s("app.ini")),
        ],
    );
    let h = i.port(0);
    i.wait_log("spawned uWSGI worker 1");
    assert!(i.stderr().contains(&format!(
        "Loading paste environment: config:{}",
        s.s("app.ini")
    )));
    assert_eq!(get(h, "/").text(), "paste says hello");
}

#[test]
fn flask_and_django_pass_wsgiref_validate() {
    let venv = venv();
    let s = Scratch::new("py-fw-validate");
    let project = s.path("project");
    let ok = Command::new(venv.join("bin/python"))
        .args([
            &app("django_setup.py"),
            &project.to_string_lossy().into_owned(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let runs: [(&str, String, &str, String, &[&str]); 2] = [
        (
            "flask",
            app("flaskapp.py"),
            "app",
            apps_dir().to_string_lossy().into_owned(),
            &["/", "/static/site.css", "/where"],
        ),
        (
            "django",
            project
                .join("mysite/wsgi.py")
                .to_string_lossy()
                .into_owned(),
            "application",
            project.to_string_lossy().into_owned(),
            &["/form/", "/static/hello.txt"],
        ),
    ];
    for (name, file, callable, dir, paths) in runs {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--http-socket",
            "127.0.0.1:0",
            "--virtualenv",
            &venv.to_string_lossy(),
            "--chdir",
            &dir,
            "--wsgi-file",
            &app("validated.py"),
        ])
        .env("VALIDATE_APP", &file)
        .env("VALIDATE_CALLABLE", callable)
        .env("DJANGO_SETTINGS_MODULE", "mysite.settings");
        let i = Instance::spawn(&s, &mut cmd, &format!("{name}.log"));
        let h = i.port(0);
        i.wait_log("spawned uWSGI worker 1");
        for p in paths {
            assert_eq!(get(h, p).status, 200, "{name} {p}\n{}", i.stderr());
        }
        let r = http(
            h,
            "POST",
            if name == "flask" { "/form" } else { "/form/" },
            b"name=v",
        );
        assert_eq!(r.status, 200, "{name} POST\n{}", i.stderr());
        assert_no_python_errors(&i);
    }
}
