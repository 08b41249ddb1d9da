# Runs any test app wrapped in wsgiref.validate: $VALIDATE_APP is the app's file,
# $VALIDATE_CALLABLE its callable (default `application`; `name()` calls a factory).
import os
import runpy
from wsgiref.validate import validator

_ns = runpy.run_path(os.environ['VALIDATE_APP'], run_name='validated_app')
_name = os.environ.get('VALIDATE_CALLABLE', 'application')
_app = _ns[_name[:-2] if _name.endswith('()') else _name]
if _name.endswith('()'):
    _app = _app()
application = validator(_app)
