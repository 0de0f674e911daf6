{{ companies_in_role('licensor') }}
