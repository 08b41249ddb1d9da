# Builds the Django project of tests/python_frameworks.rs: `django-admin startproject`
# plus one view with a form POST and a static file served by django.views.static.serve
# (a FileResponse, so wsgi.file_wrapper). Run with the venv's python: setup.py <dir>.
import os
import subprocess
import sys

root = sys.argv[1]
os.makedirs(root, exist_ok=True)
subprocess.check_call([os.path.join(os.path.dirname(sys.executable), 'django-admin'), 'startproject', 'mysite', root])
os.makedirs(os.path.join(root, 'static'), exist_ok=True)
with open(os.path.join(root, 'static', 'hello.txt'), 'w') as f:
    f.write('static hello from django\n')
with open(os.path.join(root, 'mysite', 'views.py'), 'w') as f:
    f.write('''
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def form(request):
    if request.method == 'POST':
        return HttpResponse('posted %s' % request.POST.get('name', ''))
    return HttpResponse('<form method="post"><input name="name"></form>')
''')
with open(os.path.join(root, 'mysite', 'urls.py'), 'w') as f:
    f.write('''
from django.urls import path, re_path
from django.views.static import serve
from django.conf import settings
from . import views

urlpatterns = [
    path('form/', views.form),
    re_path(r'^static/(?P<path>.*)$', serve, {'document_root': settings.BASE_DIR / 'static'}),
]
''')
settings = os.path.join(root, 'mysite', 'settings.py')
with open(settings) as f:
    text = f.read()
text = text.replace("ALLOWED_HOSTS = []", "ALLOWED_HOSTS = ['*']")
with open(settings, 'w') as f:
    f.write(text)
