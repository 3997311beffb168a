#!/bin/sh
# Re-extract every resident-facing string and merge it into each catalog.
# Run from the repository root after changing texts in bot/ or flows/.
set -e
pybabel extract -F i18n/babel.cfg -k N_ -k pN_:1c,2 -k nN_:1,2 --no-wrap \
    --project=Kiezstimme --copyright-holder="Kiezstimme contributors" -o i18n/kiezstimme.pot .
pybabel update -i i18n/kiezstimme.pot -d i18n -D kiezstimme --no-wrap --ignore-obsolete
