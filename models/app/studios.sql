{{ companies_in_role('studio') }}
