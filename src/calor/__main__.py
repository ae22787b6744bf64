from calor.cli.main import app

app(prog_name="calor")
